package temporalconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/outlookd/outlookd/internal/testenv"
)

// frame is one gRPC message, passed through undecoded.
type frame struct{ b []byte }

// rawCodec moves messages as bytes, so the front needs no Temporal types.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return v.(*frame).b, nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	v.(*frame).b = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// apiKeyFront is a TLS gRPC front for the stack's Temporal that, like
// Temporal Cloud, refuses a call without "authorization: Bearer <key>", and
// forwards the others (unary, as every call of the SDK's client is).
func apiKeyFront(t *testing.T, upstream, key string, cert tls.Certificate) string {
	t.Helper()
	up, err := grpc.NewClient(upstream, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	handler := func(_ any, ss grpc.ServerStream) error {
		method, _ := grpc.MethodFromServerStream(ss)
		md, _ := metadata.FromIncomingContext(ss.Context())
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+key {
			return status.Error(codes.Unauthenticated, "missing or wrong API key")
		}
		md = md.Copy()
		md.Delete("authorization")
		ctx := metadata.NewOutgoingContext(ss.Context(), md)
		var in, out frame
		if err := ss.RecvMsg(&in); err != nil {
			return err
		}
		var header, trailer metadata.MD
		if err := up.Invoke(ctx, method, &in, &out, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
			return err
		}
		_ = ss.SendHeader(header)
		ss.SetTrailer(trailer)
		return ss.SendMsg(&out)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})),
		grpc.ForceServerCodec(rawCodec{}), grpc.UnknownServiceHandler(handler))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestAPIKeyToTheStack dials the stack's Temporal through a front that
// wants an API key over TLS, as Temporal Cloud does, configured by
// TEMPORAL_API_KEY (which turns TLS on by itself): the right key gets
// through, a wrong one is refused.
func TestAPIKeyToTheStack(t *testing.T) {
	upstream := testenv.Temporal(t)
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	ca, caKey, caPath, _ := issue(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	_, _, srvCert, srvKey := issue(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "temporal.test"},
		DNSNames: []string{"temporal.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	const key = "test-api-key-123"
	front := apiKeyFront(t, upstream, key, pair)

	for _, tt := range []struct {
		name, key string
		ok        bool
	}{
		{"right key", key, true},
		{"wrong key", "not-the-key", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load([]string{"TEMPORAL_ADDRESS=" + front, "TEMPORAL_NAMESPACE=default", "TEMPORAL_API_KEY=" + tt.key,
				"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + caPath, "TEMPORAL_TLS_SERVER_NAME=temporal.test"})
			if err != nil {
				t.Fatal(err)
			}
			if !p.TLS || !p.APIKey || p.MTLS {
				t.Fatalf("profile %+v, want TLS with an API key", p)
			}
			opts, err := p.ClientOptions(nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.DialContext(ctx, opts)
			if !tt.ok {
				if err == nil {
					c.Close()
					t.Fatal("dial with a wrong key succeeded")
				}
				if status.Code(err) != codes.Unauthenticated {
					t.Errorf("dial with a wrong key: %v, want Unauthenticated", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial with the key: %v", err)
			}
			defer c.Close()
			if _, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"}); err != nil {
				t.Fatalf("a call with the key: %v", err)
			}
		})
	}
}
