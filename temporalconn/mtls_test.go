package temporalconn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/internal/testenv"
)

// issue makes a key and a certificate for tmpl signed by parent (self-signed
// when parent is nil), and writes both as PEM into dir.
func issue(t *testing.T, dir, name string, tmpl *x509.Certificate, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, certPath, keyPath
}

// mtlsFront is a TLS front for the stack's Temporal that requires a client
// certificate signed by ca, as a cluster with mTLS does; behind it the
// plaintext gRPC goes to upstream.
func mtlsFront(t *testing.T, upstream string, serverCert tls.Certificate, ca *x509.Certificate) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2"},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return
				}
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.Close() }()
				_, _ = io.Copy(c, u)
			})
		}
	})
	return ln.Addr().String()
}

// TestMTLSToTheStack dials the stack's Temporal through a front that
// requires mutual TLS, with the settings only in TEMPORAL_TLS_* variables:
// the right client certificate gets through, none or a wrong server name
// does not.
func TestMTLSToTheStack(t *testing.T) {
	upstream := testenv.Temporal(t)
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	ca, caKey, caPath, _ := issue(t, dir, "ca", &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil, nil)
	_, _, srvCert, srvKey := issue(t, dir, "server", &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "temporal.test"},
		DNSNames: []string{"temporal.test"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	_, _, clCert, clKey := issue(t, dir, "client", &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "outlookd"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	pair, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	front := mtlsFront(t, upstream, pair, ca)

	base := []string{"TEMPORAL_ADDRESS=" + front, "TEMPORAL_NAMESPACE=default", "TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + caPath}
	tests := []struct {
		name string
		env  []string
		ok   bool
	}{
		{"client certificate", []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=" + clCert, "TEMPORAL_TLS_CLIENT_KEY_PATH=" + clKey, "TEMPORAL_TLS_SERVER_NAME=temporal.test"}, true},
		{"no client certificate", []string{"TEMPORAL_TLS_SERVER_NAME=temporal.test"}, false},
		{"wrong server name", []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=" + clCert, "TEMPORAL_TLS_CLIENT_KEY_PATH=" + clKey, "TEMPORAL_TLS_SERVER_NAME=other.test"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(append(append([]string{}, base...), tt.env...))
			if err != nil {
				t.Fatal(err)
			}
			if !p.TLS {
				t.Fatalf("profile without TLS: %+v", p)
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
					t.Fatal("dial succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("dial through mTLS: %v", err)
			}
			defer c.Close()
			if _, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: "default"}); err != nil {
				t.Fatalf("a call through mTLS: %v", err)
			}
		})
	}
}
