package vault_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/vault"
)

// serviceClient logs in as the service, as outlookd does.
func serviceClient(t *testing.T) *vault.Client { return testenv.VaultClient(t) }

func TestTokenStoreCheckAndSetAndPurge(t *testing.T) {
	ctx := context.Background()
	ts := serviceClient(t).Tokens()
	conn := "test-" + t.Name() + time.Now().Format("150405.000000000")
	if _, _, err := ts.GetTokens(ctx, conn); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing tokens: %v", err)
	}
	first := vault.Tokens{AccessToken: "at-1", RefreshToken: "rt-1", Expiry: time.Now().Add(time.Hour).UTC(), Scope: "Mail.Read"}
	if err := ts.PutTokens(ctx, conn, first, 0); err != nil {
		t.Fatal(err)
	}
	got, v, err := ts.GetTokens(ctx, conn)
	if err != nil || got.RefreshToken != "rt-1" || v != 1 || !got.Expiry.Equal(first.Expiry) {
		t.Fatalf("read back: %+v v%d %v", got, v, err)
	}
	// Two refreshes race from version 1: one wins, the other is told.
	if err := ts.PutTokens(ctx, conn, vault.Tokens{AccessToken: "at-2", RefreshToken: "rt-2"}, 1); err != nil {
		t.Fatal(err)
	}
	if err := ts.PutTokens(ctx, conn, vault.Tokens{AccessToken: "at-3", RefreshToken: "rt-3"}, 1); !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("stale write: %v", err)
	}
	if err := ts.PutTokens(ctx, conn, first, 0); !errors.Is(err, vault.ErrConflict) {
		t.Fatalf("create over existing: %v", err)
	}
	if got, _, _ := ts.GetTokens(ctx, conn); got.RefreshToken != "rt-2" {
		t.Fatalf("the winning rotation was lost: %+v", got)
	}
	if err := ts.PutPending(ctx, conn, vault.Pending{Verifier: "v", StateNonce: "n", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := ts.PutConsentCode(ctx, conn, "ref1", "code-1"); err != nil {
		t.Fatal(err)
	}
	if code, _, err := ts.GetConsentCode(ctx, conn, "ref1"); err != nil || code != "code-1" {
		t.Fatalf("consent code: %q %v", code, err)
	}
	if n, _ := ts.Count(ctx, conn); n != 3 {
		t.Errorf("count = %d, want 3", n)
	}
	// A refused code goes alone; the end of a consent takes every code
	// and the verifier, and leaves the tokens.
	if err := ts.PutConsentCode(ctx, conn, "ref2", "code-2"); err != nil {
		t.Fatal(err)
	}
	if err := ts.DeleteConsentCode(ctx, conn, "ref2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ts.GetConsentCode(ctx, conn, "ref2"); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("a deleted code: %v", err)
	}
	if _, err := ts.GetPending(ctx, conn); err != nil {
		t.Errorf("deleting one code took the verifier: %v", err)
	}
	if err := ts.PutConsentCode(ctx, conn, "ref3", "code-3"); err != nil {
		t.Fatal(err)
	}
	known, err := ts.GetPending(ctx, conn) // as an exchange read it
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.DeleteConsent(ctx, conn, &known); err != nil {
		t.Fatal(err)
	}
	if n, _ := ts.Count(ctx, conn); n != 2 {
		t.Errorf("after the consent: %d secrets, want the tokens and the completed consent", n)
	}
	if p, err := ts.GetPending(ctx, conn); err != nil || p.Verifier != "" || p.StateNonce != "n" || p.Completed.IsZero() {
		t.Errorf("after the consent the pending consent is %+v (%v), want its state nonce alone, completed", p, err)
	}
	// A second consent, deleted without the pending consent at hand: read
	// here.
	if err := ts.PutPending(ctx, conn, vault.Pending{Verifier: "v2", StateNonce: "n2", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := ts.PutConsentCode(ctx, conn, "ref4", "code-4"); err != nil {
		t.Fatal(err)
	}
	if err := ts.DeleteConsent(ctx, conn, nil); err != nil {
		t.Fatal(err)
	}
	if p, err := ts.GetPending(ctx, conn); err != nil || p.Verifier != "" || p.StateNonce != "n2" || p.Completed.IsZero() {
		t.Errorf("after the second consent the pending consent is %+v (%v), want its state nonce alone, completed", p, err)
	}
	if err := ts.PutConsentCode(ctx, conn, "ref1", "code-1"); err != nil {
		t.Fatal(err)
	}
	if err := ts.PutPending(ctx, conn, vault.Pending{Verifier: "v", StateNonce: "n", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	n, err := ts.Purge(ctx, conn)
	if err != nil || n != 3 {
		t.Fatalf("purge: %d %v", n, err)
	}
	if n, _ := ts.Count(ctx, conn); n != 0 {
		t.Errorf("after purge: %d secrets", n)
	}
	if n, err := ts.Purge(ctx, conn); err != nil || n != 0 {
		t.Errorf("second purge: %d %v", n, err)
	}
}

// TestClientStatesPerMailbox: the clientState of each subscription of a
// connection is kept apart, its own mailbox's and each of its mailboxes'
// (an application connection's), so that a second mailbox's never
// overwrites the first's; a purge takes them all.
func TestClientStatesPerMailbox(t *testing.T) {
	ctx := context.Background()
	ts := serviceClient(t).Tokens()
	conn := "test-" + t.Name() + time.Now().Format("150405.000000000")
	for _, mbx := range []string{"", "mbx-a", "mbx-b", "mbx-a"} {
		if err := ts.PutClientState(ctx, conn, mbx, "state-of-"+mbx); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := ts.Count(ctx, conn); err != nil || n != 3 {
		t.Errorf("count = %d (%v), want 3: the connection's and two mailboxes'", n, err)
	}
	if n, err := ts.Purge(ctx, conn); err != nil || n != 3 {
		t.Errorf("purged %d (%v), want 3", n, err)
	}
}
