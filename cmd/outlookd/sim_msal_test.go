package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"

	"github.com/outlookd/outlookd/graphsim"
)

// TestSimStandaloneMSAL runs `outlookd sim --tls --seed demo` and gets
// app-only tokens from it with MSAL for Go, with the demo app's secret and
// with a certificate registered through the control API, then lists the
// users with them after the demo admin's consent
// (docs/graph.md#private-authorities-and-msal).
func TestSimStandaloneMSAL(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	demo := runSim(t, io.Discard, "--addr", "127.0.0.1:0", "--tls", "--ca-file", caFile, "--seed", "demo",
		"--messages", "5", "--auto-consent", "--redirect-uri", "http://127.0.0.1:9/cb")
	ctx := t.Context()
	hc := trustingClient(t, caFile)

	// The demo admin grants the app's application permissions.
	noRedirect := *hc
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := noRedirect.Get(demo.URL + "/" + demo.TenantID + "/v2.0/adminconsent?" + url.Values{"client_id": {demo.ClientID},
		"redirect_uri": {"http://127.0.0.1:9/cb"}, "scope": {"https://graph.microsoft.com/.default"}, "login_hint": {demo.Admin}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") != "" || loc.Query().Get("tenant") != demo.TenantID {
		t.Fatalf("admin consent: %s", resp.Header.Get("Location"))
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "demo daemon"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if _, err := graphsim.NewClient(demo.URL, hc).AddCertificate(ctx, demo.ClientID, der, time.Time{}); err != nil {
		t.Fatal(err)
	}
	secret, _ := confidential.NewCredFromSecret(demo.ClientSecret)
	withCert, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
	if err != nil {
		t.Fatal(err)
	}
	for name, cred := range map[string]confidential.Credential{"secret": secret, "certificate": withCert} {
		client, err := confidential.New(demo.URL+"/"+demo.TenantID, demo.ClientID, cred, confidential.WithHTTPClient(hc), confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.AcquireTokenByCredential(ctx, []string{"https://graph.microsoft.com/.default"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		req, _ := http.NewRequest("GET", demo.URL+"/v1.0/users", nil)
		req.Header.Set("Authorization", "Bearer "+res.AccessToken)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: GET /users: %d", name, resp.StatusCode)
		}
	}
}
