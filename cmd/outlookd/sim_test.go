package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestSimStandaloneDemo runs `outlookd sim --seed demo --tls` and uses the
// demo tenant over HTTPS with the CA it wrote, as a person would.
func TestSimStandaloneDemo(t *testing.T) {
	dir := t.TempDir()
	caFile, infoFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "demo.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- simulate(ctx, []string{"--addr", "127.0.0.1:0", "--tls", "--ca-file", caFile, "--seed", "demo",
			"--messages", "50", "--auto-consent", "--redirect-uri", "http://127.0.0.1:9/cb", "--info-file", infoFile}, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	var demo struct {
		URL          string   `json:"url"`
		ClientID     string   `json:"clientId"`
		ClientSecret string   `json:"clientSecret"`
		Users        []string `json:"users"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(infoFile)
		if err == nil && json.Unmarshal(b, &demo) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no demo info: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(demo.URL, "https://") {
		t.Fatalf("URL %q is not https", demo.URL)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cfg := &oauth2.Config{ClientID: demo.ClientID, ClientSecret: demo.ClientSecret, RedirectURL: "http://127.0.0.1:9/cb", Scopes: []string{"offline_access", "Mail.Read"},
		Endpoint: oauth2.Endpoint{AuthURL: demo.URL + "/common/oauth2/v2.0/authorize", TokenURL: demo.URL + "/common/oauth2/v2.0/token"}}
	verifier := oauth2.GenerateVerifier()
	resp, err := hc.Get(cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", demo.Users[0])))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange over TLS: %v", err)
	}
	req, _ := http.NewRequest("GET", demo.URL+"/v1.0/me/mailFolders/inbox", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var inbox struct {
		Total int `json:"totalItemCount"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&inbox)
	resp.Body.Close()
	if resp.StatusCode != 200 || inbox.Total == 0 {
		t.Errorf("demo inbox: %d %+v", resp.StatusCode, inbox)
	}
}
