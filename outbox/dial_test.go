package outbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// TestPrivate: the addresses deliveries never reach, in every form, and
// public ones that pass.
func TestPrivate(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		private bool
	}{
		{"127.0.0.1", true},
		{"127.8.9.10", true},
		{"::1", true},
		{"::ffff:127.0.0.1", true}, // IPv4-mapped loopback
		{"0.0.0.0", true},          // dials this machine
		{"::", true},
		{"10.1.2.3", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"169.254.169.254", true}, // cloud metadata
		{"fe80::1", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		{"::ffff:10.0.0.1", true},
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"100.64.0.1", true},         // carrier-grade NAT
		{"224.0.0.1", true},
		{"255.255.255.255", true},
		{"fec0::1", true},
		{"8.8.8.8", false},
		{"172.32.0.1", false},
		{"192.169.0.1", false},
		{"100.128.0.1", false},
		{"2606:4700::1111", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"::ffff:8.8.8.8", false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := Private(a); got != tc.private {
			t.Errorf("Private(%s) = %v, want %v", tc.addr, got, tc.private)
		}
		err := refusePrivate("tcp", netip.AddrPortFrom(a, 443).String(), nil)
		if (err != nil) != tc.private || (err != nil && !errors.Is(err, ErrPrivateAddress)) {
			t.Errorf("dialling %s: %v", tc.addr, err)
		}
	}
}

// TestCheckEndpoint: what registration refuses, by URL.
func TestCheckEndpoint(t *testing.T) {
	for _, tc := range []struct {
		url           string
		allowInsecure bool
		want          error
	}{
		{"https://hooks.example/outlookd", false, nil}, // does not resolve: the dialler judges it later
		{"https://8.8.8.8/hooks", false, nil},
		{"http://hooks.example/outlookd", false, ErrInsecureScheme},
		{"http://127.0.0.1:9000/hooks", false, ErrInsecureScheme},
		{"https://127.0.0.1:9000/hooks", false, ErrPrivateAddress},
		{"https://[::1]/hooks", false, ErrPrivateAddress},
		{"https://10.0.0.5/hooks", false, ErrPrivateAddress},
		{"https://169.254.169.254/latest", false, ErrPrivateAddress},
		{"https://[fd00::1]/hooks", false, ErrPrivateAddress},
		{"https://localhost/hooks", false, ErrPrivateAddress},
		{"https://api.localhost./hooks", false, ErrPrivateAddress},
		{"https://LOCALHOST:8443/hooks", false, ErrPrivateAddress},
		{"http://127.0.0.1:9000/hooks", true, nil},
		{"https://10.0.0.5/hooks", true, nil},
	} {
		u, _ := url.Parse(tc.url)
		if err := CheckEndpoint(context.Background(), u, tc.allowInsecure); !errors.Is(err, tc.want) {
			t.Errorf("%s (allowInsecure %v): %v, want %v", tc.url, tc.allowInsecure, err, tc.want)
		}
	}
}

// oneDelivery is a Store holding one due delivery, recording its outcome.
type oneDelivery struct {
	mu      sync.Mutex
	url     string
	claimed bool
	done    bool
	ok      bool
	errText string
}

func (s *oneDelivery) ClaimDeliveries(context.Context, int, time.Duration) ([]store.Delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claimed {
		return nil, nil
	}
	s.claimed = true
	return []store.Delivery{{Event: store.Event{Seq: 1, ID: "evt_1", Type: "connection.created", CreatedAt: time.Now()}, EndpointID: "we_1", OrgID: "acme", URL: s.url}}, nil
}

func (s *oneDelivery) DeliveryDone(_ context.Context, _ string, _ int64, delivered bool, errText string, _ time.Time, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done, s.ok, s.errText = true, delivered, errText
	return nil
}

// TestDeliveryRefusesPrivate: at delivery time, whatever was registered,
// the dispatcher's own client does not reach this machine (here a test
// server on loopback, over http and over https) nor follow a redirect
// there, unless insecure delivery is allowed.
func TestDeliveryRefusesPrivate(t *testing.T) {
	var mu sync.Mutex
	hits := 0
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	tls := httptest.NewTLSServer(handler)
	defer tls.Close()
	secrets := func(context.Context, string, string) (vault.SigningSecrets, error) {
		return vault.SigningSecrets{Current: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, nil
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name          string
		url           string
		allowInsecure bool
		delivered     bool
		errText       string
	}{
		{"http on loopback", plain.URL, false, false, "not https"},
		{"https on loopback", tls.URL, false, false, "loopback, private or link-local"},
		{"http on loopback, insecure allowed", plain.URL, true, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &oneDelivery{url: tc.url}
			d := &Dispatcher{Store: st, Secrets: secrets, Log: log, AllowInsecure: tc.allowInsecure}
			mu.Lock()
			before := hits
			mu.Unlock()
			if _, err := d.Once(context.Background(), 10); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			reached := hits > before
			mu.Unlock()
			if !st.done || st.ok != tc.delivered || reached != tc.delivered || !strings.Contains(st.errText, tc.errText) {
				t.Errorf("delivered %v (reached %v), error %q; want delivered %v, error with %q", st.ok, reached, st.errText, tc.delivered, tc.errText)
			}
		})
	}
}
