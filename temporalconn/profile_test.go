package temporalconn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pki writes a CA, a client certificate signed by it and the client's key,
// and a second key that does not match, into dir.
func pki(t *testing.T, dir string) (ca, cert, key, otherKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	marshal := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	caKey, clientKey := newKey(), newKey()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	clTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "outlookd"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	clDER, err := x509.CreateCertificate(rand.Reader, clTmpl, caTmpl, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("client.pem", "CERTIFICATE", clDER),
		write("client.key", "PRIVATE KEY", marshal(clientKey)), write("other.key", "PRIVATE KEY", marshal(newKey()))
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	// Temporal's default profile path lives under XDG_CONFIG_HOME: point it
	// at an empty folder so a developer's own profile cannot leak in.
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	ca, cert, key, otherKey := pki(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	profiles := filepath.Join(dir, "temporal.toml")
	if err := os.WriteFile(profiles, []byte(`
[profile.default]
address = "temporal.internal:7233"
namespace = "mail"

[profile.cloud]
address = "outlookd.a1b2c.tmprl.cloud:7233"
namespace = "outlookd.a1b2c"
[profile.cloud.tls]
client_cert_path = "`+cert+`"
client_key_path = "`+key+`"
server_name = "outlookd.a1b2c.tmprl.cloud"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	typo := filepath.Join(dir, "typo.toml")
	if err := os.WriteFile(typo, []byte("[profile.default]\nadress = \"x:1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	type want struct {
		address, namespace string
		tls, mtls, apiKey  bool
		skipVerify         bool
		serverName         string
	}
	tests := []struct {
		name    string
		env     []string
		want    want
		wantErr string // a fragment of the error, naming the variable
	}{
		{name: "defaults", env: []string{}, want: want{address: DefaultAddress, namespace: DefaultNamespace}},
		{name: "outlookd's two variables", env: []string{"TEMPORAL_ADDRESS=temporal:7233", "TEMPORAL_NAMESPACE=prod"},
			want: want{address: "temporal:7233", namespace: "prod"}},
		{name: "profile file", env: []string{"TEMPORAL_CONFIG_FILE=" + profiles},
			want: want{address: "temporal.internal:7233", namespace: "mail"}},
		{name: "variable over profile", env: []string{"TEMPORAL_CONFIG_FILE=" + profiles, "TEMPORAL_ADDRESS=other:7233"},
			want: want{address: "other:7233", namespace: "mail"}},
		{name: "named profile with mTLS", env: []string{"TEMPORAL_CONFIG_FILE=" + profiles, "TEMPORAL_PROFILE=cloud"},
			want: want{address: "outlookd.a1b2c.tmprl.cloud:7233", namespace: "outlookd.a1b2c", tls: true, mtls: true, serverName: "outlookd.a1b2c.tmprl.cloud"}},
		{name: "API key turns TLS on", env: []string{"TEMPORAL_ADDRESS=eu-west-1.aws.api.temporal.io:7233", "TEMPORAL_NAMESPACE=ns.acct", "TEMPORAL_API_KEY=k"},
			want: want{address: "eu-west-1.aws.api.temporal.io:7233", namespace: "ns.acct", tls: true, apiKey: true}},
		{name: "mTLS from variables", env: []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=" + cert, "TEMPORAL_TLS_CLIENT_KEY_PATH=" + key,
			"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + ca, "TEMPORAL_TLS_SERVER_NAME=temporal.internal"},
			want: want{address: DefaultAddress, namespace: DefaultNamespace, tls: true, mtls: true, serverName: "temporal.internal"}},
		{name: "TLS with the system roots", env: []string{"TEMPORAL_TLS=true"}, want: want{address: DefaultAddress, namespace: DefaultNamespace, tls: true}},
		{name: "TLS without verification", env: []string{"TEMPORAL_TLS=true", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION=true"},
			want: want{address: DefaultAddress, namespace: DefaultNamespace, tls: true, skipVerify: true}},
		{name: "TLS off", env: []string{"TEMPORAL_TLS=false"}, want: want{address: DefaultAddress, namespace: DefaultNamespace}},

		{name: "missing profile file", env: []string{"TEMPORAL_CONFIG_FILE=" + filepath.Join(dir, "nope.toml")}, wantErr: "TEMPORAL_CONFIG_FILE"},
		{name: "unknown profile", env: []string{"TEMPORAL_CONFIG_FILE=" + profiles, "TEMPORAL_PROFILE=staging"}, wantErr: `profile "staging"`},
		{name: "unknown setting in profile", env: []string{"TEMPORAL_CONFIG_FILE=" + typo}, wantErr: "adress"},
		{name: "address without port", env: []string{"TEMPORAL_ADDRESS=temporal"}, wantErr: "TEMPORAL_ADDRESS"},
		{name: "namespace with space", env: []string{"TEMPORAL_NAMESPACE=my ns"}, wantErr: "TEMPORAL_NAMESPACE"},
		{name: "certificate without key", env: []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=" + cert}, wantErr: "TEMPORAL_TLS_CLIENT_KEY_PATH"},
		{name: "key without certificate", env: []string{"TEMPORAL_TLS_CLIENT_KEY_PATH=" + key}, wantErr: "TEMPORAL_TLS_CLIENT_CERT_PATH"},
		{name: "key that does not match", env: []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=" + cert, "TEMPORAL_TLS_CLIENT_KEY_PATH=" + otherKey}, wantErr: "matching private key"},
		{name: "certificate path and data", env: []string{"TEMPORAL_TLS_CLIENT_CERT_PATH=" + cert, "TEMPORAL_TLS_CLIENT_CERT_DATA=x", "TEMPORAL_TLS_CLIENT_KEY_PATH=" + key}, wantErr: "not both"},
		{name: "unreadable CA file", env: []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + filepath.Join(dir, "missing-ca.pem")}, wantErr: "TEMPORAL_TLS_SERVER_CA_CERT_PATH"},
		{name: "CA file not PEM", env: []string{"TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + notPEM}, wantErr: "PEM"},
		{name: "CA data without a certificate", env: []string{"TEMPORAL_TLS_SERVER_CA_CERT_DATA=-----BEGIN X-----\nAAAA\n-----END X-----\n"}, wantErr: "none found"},
		{name: "API key in clear", env: []string{"TEMPORAL_API_KEY=k", "TEMPORAL_TLS=false"}, wantErr: "in clear"},
		{name: "remote codec", env: []string{"TEMPORAL_CODEC_ENDPOINT=https://codec.internal"}, wantErr: "TEMPORAL_CODEC_ENDPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(tt.env)
			if tt.wantErr != "" {
				var ce *Error
				if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load = %+v, %v; want a *Error containing %q", p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{address: p.Address, namespace: p.Namespace, tls: p.TLS, mtls: p.MTLS, apiKey: p.APIKey, skipVerify: p.SkipVerify}
			opts, err := p.ClientOptions(nil)
			if err != nil {
				t.Fatal(err)
			}
			if opts.HostPort != p.Address || opts.Namespace != p.Namespace {
				t.Errorf("client options %s/%s, profile %s/%s", opts.HostPort, opts.Namespace, p.Address, p.Namespace)
			}
			if (opts.Credentials != nil) != p.APIKey {
				t.Errorf("credentials set = %v, want %v", opts.Credentials != nil, p.APIKey)
			}
			if opts.ConnectionOptions.TLS != nil {
				got.serverName = opts.ConnectionOptions.TLS.ServerName
				if strings.Contains(strings.Join(tt.env, " "), "SERVER_CA") && opts.ConnectionOptions.TLS.RootCAs == nil {
					t.Error("server CA set but no root pool")
				}
			}
			if got != tt.want {
				t.Errorf("Load = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestLogValueHidesTheKey: the API key never reaches a log line.
func TestLogValueHidesTheKey(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	p, err := Load([]string{"TEMPORAL_API_KEY=super-secret-key"})
	if err != nil {
		t.Fatal(err)
	}
	if s := p.LogValue().String(); strings.Contains(s, "super-secret-key") || !strings.Contains(s, "api_key=true") {
		t.Errorf("log value %s", s)
	}
}
