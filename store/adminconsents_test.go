package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// TestAdminConsents: a link is answered once, never after it expired; a
// tenant's consent is its newest answer, found by the tenant ID Microsoft
// named or by the tenant as asked; and a connection may wait in
// admin_consent_required.
func TestAdminConsents(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	link := func(id, tenant, conn string, expires time.Duration) {
		t.Helper()
		if err := st.InsertAdminConsent(ctx, store.AdminConsent{ID: id, OrgID: "org", Tenant: tenant, ConnectionID: conn, Scopes: []string{"https://graph.microsoft.com/Mail.Read"},
			StateHash: []byte{1, 2, 3}, RequestedBy: "u", ExpiresAt: time.Now().Add(expires)}); err != nil {
			t.Fatal(err)
		}
	}
	const tid = "11111111-2222-3333-4444-555555555555"
	link("ac_pending", tid, "", time.Hour)
	if a, err := st.TenantConsent(ctx, "org", tid); err != nil || a.ID != "ac_pending" || a.Answered() {
		t.Fatalf("pending: %+v %v", a, err)
	}
	if _, err := st.TenantConsent(ctx, "other-org", tid); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another organisation's consent: %v", err)
	}
	link("ac_granted", "organizations", "conn_1", time.Hour)
	a, err := st.AnswerAdminConsent(ctx, "ac_granted", store.AdminConsentAnswer{Outcome: store.ConsentGranted, TenantID: tid, GrantedScopes: []string{"Mail.Read"}})
	if err != nil || !a.Answered() || a.TenantID != tid || a.ConnectionID != "conn_1" {
		t.Fatalf("answer: %+v %v", a, err)
	}
	if _, err := st.AnswerAdminConsent(ctx, "ac_granted", store.AdminConsentAnswer{Outcome: store.ConsentRefused, Reason: "consent_declined"}); !errors.Is(err, store.ErrAnswered) {
		t.Errorf("a second answer: %v", err)
	}
	link("ac_expired", tid, "", -time.Second)
	if _, err := st.AnswerAdminConsent(ctx, "ac_expired", store.AdminConsentAnswer{Outcome: store.ConsentGranted, TenantID: tid}); !errors.Is(err, store.ErrAnswered) {
		t.Errorf("an expired link answered: %v", err)
	}
	if _, err := st.AnswerAdminConsent(ctx, "ac_none", store.AdminConsentAnswer{Outcome: store.ConsentGranted}); !errors.Is(err, store.ErrAnswered) {
		t.Errorf("an unknown link answered: %v", err)
	}
	// The answer wins over the pending link, by tenant ID.
	if a, err := st.TenantConsent(ctx, "org", tid); err != nil || a.ID != "ac_granted" || a.Outcome != store.ConsentGranted {
		t.Errorf("by tenant ID: %+v %v", a, err)
	}
	link("ac_refused", "fabrikam.example", "", time.Hour)
	if _, err := st.AnswerAdminConsent(ctx, "ac_refused", store.AdminConsentAnswer{Outcome: store.ConsentRefused, Reason: "consent_declined", ReasonText: "declined"}); err != nil {
		t.Fatal(err)
	}
	if a, err := st.TenantConsent(ctx, "org", "Fabrikam.Example"); err != nil || a.Outcome != store.ConsentRefused || a.Reason != "consent_declined" {
		t.Errorf("by the tenant as asked: %+v %v", a, err)
	}
	got, err := st.TenantConsents(ctx, "org", []string{tid, "99999999-2222-3333-4444-555555555555"})
	if err != nil || len(got) != 1 || got[tid].ID != "ac_granted" {
		t.Errorf("tenant consents: %+v %v", got, err)
	}
	if a, err := st.ConnectionConsent(ctx, "conn_1"); err != nil || a.ID != "ac_granted" {
		t.Errorf("connection consent: %+v %v", a, err)
	}
	if _, err := st.ConnectionConsent(ctx, "conn_2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a connection without consent: %v", err)
	}

	if err := st.CreateConnection(ctx, store.Connection{ID: "conn_1", OrgID: "org", OwnerID: "u", State: "pending_consent", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateConnection(ctx, "conn_1", store.ConnectionUpdate{State: "admin_consent_required"}); err != nil {
		t.Errorf("the registry refuses admin_consent_required: %v", err)
	}
	if err := st.UpdateConnection(ctx, "conn_1", store.ConnectionUpdate{State: "no_such_state"}); err == nil {
		t.Error("the registry took an unknown state")
	}
}
