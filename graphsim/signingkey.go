package graphsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is defined as a SHA-1 thumbprint (RFC 7517 section 4.8)
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"time"
)

// signingKey is the key graphsim signs tokens with, and its self-signed
// certificate, published as Entra publishes its keys
// (docs/graph.md#signing-keys): x5c holds the certificate, x5t its SHA-1
// thumbprint, and kid equals x5t.
type signingKey struct {
	key  *rsa.PrivateKey
	cert []byte // DER
	kid  string
}

func newSigningKey(now time.Time) (*signingKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("graphsim: signing key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "accounts.accesscontrol.windows.net (graphsim)"},
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("graphsim: signing certificate: %w", err)
	}
	return &signingKey{key: key, cert: der, kid: thumbprintSHA1(der)}, nil
}

// thumbprintSHA1 is the base64url SHA-1 thumbprint of a DER certificate
// (x5t).
func thumbprintSHA1(der []byte) string {
	sum := sha1.Sum(der) //nolint:gosec // the thumbprint, not a security decision
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
