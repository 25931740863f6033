package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// TestSimStandaloneDemo runs `outlookd sim --seed demo --tls` and uses the
// demo tenant over HTTPS with the CA it wrote, as a person would.
func TestSimStandaloneDemo(t *testing.T) {
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	demo := runSim(t, io.Discard, "--addr", "127.0.0.1:0", "--tls", "--ca-file", caFile, "--seed", "demo",
		"--messages", "50", "--auto-consent", "--redirect-uri", "http://127.0.0.1:9/cb")
	ctx := t.Context()
	if !strings.HasPrefix(demo.URL, "https://") {
		t.Fatalf("URL %q is not https", demo.URL)
	}
	hc := trustingClient(t, caFile)
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
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

// lockedBuffer is a bytes.Buffer safe for a writer and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSimInsecureHTTPNotifications: `outlookd sim` refuses http://
// notification URLs as Microsoft does; --insecure-http-notifications
// accepts them and warns on stderr at start.
func TestSimInsecureHTTPNotifications(t *testing.T) {
	for _, insecure := range []bool{false, true} {
		t.Run(fmt.Sprintf("insecure=%v", insecure), func(t *testing.T) {
			args := []string{"--addr", "127.0.0.1:0", "--seed", "demo", "--messages", "1", "--auto-consent",
				"--redirect-uri", simtest.RedirectURI}
			if insecure {
				args = append(args, "--insecure-http-notifications")
			}
			var stderr lockedBuffer
			demo := runSim(t, &stderr, args...)
			ctx := t.Context()
			if warned := strings.Contains(stderr.String(), "WARNING: --insecure-http-notifications"); warned != insecure {
				t.Errorf("stderr = %q (warning wanted: %v)", stderr.String(), insecure)
			}
			cfg := &oauth2.Config{ClientID: demo.ClientID, ClientSecret: demo.ClientSecret, RedirectURL: simtest.RedirectURI,
				Scopes:   []string{"offline_access", "Mail.Read"},
				Endpoint: oauth2.Endpoint{AuthURL: demo.URL + "/common/oauth2/v2.0/authorize", TokenURL: demo.URL + "/common/oauth2/v2.0/token"}}
			q := simtest.Authorize(t, cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("login_hint", demo.Users[0])))
			tok, err := cfg.Exchange(ctx, q.Get("code"))
			if err != nil {
				t.Fatal(err)
			}
			rc := simtest.NewReceiver(t) // plain http on loopback
			body, _ := json.Marshal(map[string]any{"changeType": "created", "notificationUrl": rc.URL, "resource": "me/messages",
				"expirationDateTime": time.Now().Add(time.Hour).Format(time.RFC3339)})
			req, _ := http.NewRequest("POST", demo.URL+"/v1.0/subscriptions", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var answer struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&answer)
			resp.Body.Close()
			switch {
			case insecure && resp.StatusCode != http.StatusCreated:
				t.Errorf("with the flag: %d %+v", resp.StatusCode, answer.Error)
			case !insecure && (resp.StatusCode != http.StatusBadRequest || answer.Error.Code != "InvalidRequest" || !strings.Contains(answer.Error.Message, "scheme='http' is not supported")):
				t.Errorf("without the flag: %d %+v", resp.StatusCode, answer.Error)
			}
		})
	}
}

// simInfo is what `outlookd sim --info-file` writes.
type simInfo struct {
	graphsim.Demo
	URL string `json:"url"`
}

// runSim runs `outlookd sim` with args until the test ends, and returns
// what it wrote to its info file once it is serving.
func runSim(t *testing.T, stderr io.Writer, args ...string) simInfo {
	t.Helper()
	infoFile := filepath.Join(t.TempDir(), "sim.json")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- simulate(ctx, append(args, "--info-file", infoFile), io.Discard, stderr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	var info simInfo
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(infoFile)
		if err == nil && json.Unmarshal(b, &info) == nil {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sim info: %v", err)
		}
	}
}

// trustingClient is an HTTP client that trusts the CA `outlookd sim --tls`
// wrote to caFile.
func trustingClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}
