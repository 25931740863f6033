// Package outbox delivers the events recorded in Postgres to the webhook
// endpoints of their organisation that take their type, signed the
// Standard Webhooks way (webhook-id, webhook-timestamp, webhook-signature:
// v1,<HMAC-SHA256>), at least once per endpoint: each endpoint's delivery
// of an event is its own row (queued once, in the transaction that records
// the event), retried with exponential backoff for about a day, then
// parked (visible, and requeued on request), whatever the other endpoints
// do. Deliveries are claimed with a lease, so several dispatchers share the
// work and a crashed one's claims come back.
//
// Signing is a few lines of HMAC over "id.timestamp.body"; it is written
// here rather than taken from a library because the scheme is that small
// and its test vectors are checked in outbox_test.go.
package outbox

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// Event is an event as the feed and the deliveries show it.
type Event struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// ConnectionID names the connection the event is about (none for a
	// test event).
	ConnectionID string `json:"connection_id,omitempty"`
	// MailboxID names the mailbox an event is about, if it is about one.
	MailboxID string         `json:"mailbox_id,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	Data      map[string]any `json:"data"`
	// Cursor is where the pull feed continues after this event.
	Cursor string `json:"cursor"`
}

// View is the public form of a stored event.
func View(e store.Event) Event {
	data := e.Data
	if data == nil {
		data = map[string]any{}
	}
	return Event{ID: e.ID, Type: e.Type, ConnectionID: e.ConnectionID, MailboxID: e.MailboxID, CreatedAt: e.CreatedAt.UTC(), Data: data, Cursor: strconv.FormatInt(e.Seq, 10)}
}

// Sign returns the Standard Webhooks signature "v1,<base64>" of a body
// with a "whsec_" secret.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("outbox: signing secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts.Unix())
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// Store is what the dispatcher needs of Postgres.
type Store interface {
	ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]store.Delivery, error)
	DeliveryDone(ctx context.Context, endpointID string, seq int64, delivered bool, errText string, next time.Time, park bool) error
}

// Secrets reads an endpoint's signing secrets (endpointID "": its
// organisation's); vault.TokenStore.GetSigningSecrets is one.
type Secrets func(ctx context.Context, orgID, endpointID string) (vault.SigningSecrets, error)

// Dispatcher delivers due events.
type Dispatcher struct {
	Store   Store
	Secrets Secrets
	// HTTP sends deliveries (default NewHTTPClient(15s, AllowInsecure)).
	HTTP *http.Client
	Log  *slog.Logger
	// AllowInsecure lets deliveries go to http endpoints; only a client
	// from NewHTTPClient(_, false) refuses private addresses. Local
	// development only.
	AllowInsecure bool
	// Batch is how many events one poll claims (default 50); Idle is the
	// pause when nothing is due (default 1s).
	Batch int
	Idle  time.Duration
	// MaxAttempts before an event is parked (default 34: about a day with
	// delays doubling from 5 seconds to an hour).
	MaxAttempts int

	once sync.Once
}

// Backoff is the delay after a delivery's n-th failure: 5 s doubling,
// capped at an hour, with 10% jitter.
func Backoff(n int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	d = min(d, time.Hour)
	return d + time.Duration(rand.Int64N(int64(d/10)+1))
}

const lease = 2 * time.Minute

// Run delivers until the context ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	batch, idle := d.Batch, d.Idle
	if batch == 0 {
		batch = 50
	}
	if idle == 0 {
		idle = time.Second
	}
	for {
		n, err := d.Once(ctx, batch)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("claiming deliveries failed", "err", err)
		}
		if n < batch || err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(idle):
			}
		}
	}
}

// Once claims and delivers one batch; it returns how many it claimed.
func (d *Dispatcher) Once(ctx context.Context, batch int) (int, error) {
	due, err := d.Store.ClaimDeliveries(ctx, batch, lease)
	if err != nil {
		return 0, err
	}
	// Each endpoint's secrets are read from Vault once per batch.
	var mu sync.Mutex
	secrets := map[[2]string]*vault.SigningSecrets{}
	secretsOf := func(dl store.Delivery) (vault.SigningSecrets, error) {
		key := [2]string{dl.OrgID, dl.EndpointID}
		if dl.OrgSecret {
			key[1] = ""
		}
		mu.Lock()
		defer mu.Unlock()
		if s, ok := secrets[key]; ok {
			return *s, nil
		}
		s, err := d.Secrets(ctx, key[0], key[1])
		if err != nil {
			return s, err
		}
		secrets[key] = &s
		return s, nil
	}
	var g errgroup.Group
	g.SetLimit(8)
	for _, dl := range due {
		g.Go(func() error {
			d.deliver(ctx, dl, secretsOf)
			return nil
		})
	}
	_ = g.Wait()
	return len(due), nil
}

func (d *Dispatcher) deliver(ctx context.Context, dl store.Delivery, secretsOf func(store.Delivery) (vault.SigningSecrets, error)) {
	errText := d.post(ctx, dl, secretsOf)
	maxAttempts := d.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = 34
	}
	attempt := dl.Attempts + 1
	park := errText != "" && attempt >= maxAttempts
	if errText != "" {
		d.Log.Info("event delivery failed", "event", dl.ID, "org", dl.OrgID, "endpoint", dl.EndpointID, "attempt", attempt, "parked", park, "err", errText)
	}
	next := time.Now().Add(Backoff(attempt))
	if err := d.Store.DeliveryDone(context.WithoutCancel(ctx), dl.EndpointID, dl.Seq, errText == "", errText, next, park); err != nil {
		d.Log.Warn("recording a delivery failed; it will be retried", "event", dl.ID, "endpoint", dl.EndpointID, "err", err)
	}
}

// post sends one event; it returns "" on success, else why it failed.
func (d *Dispatcher) post(ctx context.Context, dl store.Delivery, secretsOf func(store.Delivery) (vault.SigningSecrets, error)) string {
	body, err := json.Marshal(View(dl.Event))
	if err != nil {
		return "encoding: " + err.Error()
	}
	secrets, err := secretsOf(dl)
	if err != nil {
		return "signing secret unavailable"
	}
	now := time.Now()
	sigs := []string{}
	for _, s := range []string{secrets.Current, secrets.Previous} {
		if s == "" || (s == secrets.Previous && now.Sub(secrets.RotatedAt) > 24*time.Hour) {
			continue
		}
		sig, err := Sign(s, dl.ID, now, body)
		if err != nil {
			return err.Error()
		}
		sigs = append(sigs, sig)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, dl.URL, bytes.NewReader(body))
	if err != nil {
		return "bad endpoint URL"
	}
	if req.URL.Scheme != "https" && !d.AllowInsecure {
		return "refused: the endpoint is not https"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "outlookd-webhooks/1")
	req.Header.Set("webhook-id", dl.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", strings.Join(sigs, " "))
	resp, err := d.client().Do(req)
	if errors.Is(err, ErrPrivateAddress) {
		return "refused: the endpoint's address is loopback, private or link-local"
	}
	if errors.Is(err, ErrInsecureScheme) {
		return "refused: the endpoint redirected to a URL that is not https"
	}
	if err != nil {
		return "request failed: " + trimErr(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "endpoint answered " + resp.Status
	}
	return ""
}

// client is the HTTP client deliveries are sent with.
func (d *Dispatcher) client() *http.Client {
	d.once.Do(func() {
		if d.HTTP == nil {
			d.HTTP = NewHTTPClient(15*time.Second, d.AllowInsecure)
		}
	})
	return d.HTTP
}

// trimErr keeps an error's last part (no URLs with query strings).
func trimErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
