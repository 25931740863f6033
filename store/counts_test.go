package store_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

func TestCounts(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	for _, c := range []store.Connection{
		{ID: "conn-count-1", OrgID: "o", OwnerID: "a", State: "connecting", Mode: "delegated"},
		{ID: "conn-count-2", OrgID: "o", OwnerID: "b", State: "connecting", Mode: "delegated"},
		{ID: "conn-count-3", OrgID: "o", OwnerID: "c", State: "active", Mode: "service_account"},
	} {
		if err := st.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.UpdateMailbox(ctx, "conn-count-2", store.MailboxUpdate{State: "active", SyncMode: "push"}); err != nil {
		t.Fatal(err)
	}
	flat := func(cs []store.Count, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, strings.Join(c.Values, "/")+"="+strconv.FormatInt(c.N, 10))
		}
		slices.Sort(out)
		return out
	}
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"connections", flat(st.CountConnections(ctx)), []string{"active/service_account=1", "connecting/delegated=2"}},
		{"mailboxes", flat(st.CountMailboxes(ctx)), []string{"active/push=1", "connecting/=1"}},
		{"sends", flat(st.CountSends(ctx)), nil},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestCountsThatPage(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	st, err := store.Open(ctx, dsn, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	for _, c := range []store.Connection{
		{ID: "conn-page-1", OrgID: "o-page", OwnerID: "a", State: "active", Mode: "delegated"},
		{ID: "conn-page-2", OrgID: "o-page", OwnerID: "b", State: "reauth_required", Mode: "delegated"},
	} {
		if err := st.CreateConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for i, sub := range []struct {
		conn string
		in   time.Duration
	}{
		{"conn-page-1", -time.Hour}, {"conn-page-1", time.Hour}, {"conn-page-1", 2 * time.Hour},
		{"conn-page-1", 12 * time.Hour}, {"conn-page-1", 48 * time.Hour},
		{"conn-page-2", time.Hour}, // a connection that is not active does not renew
	} {
		if err := st.SaveSubscription(ctx, store.Subscription{ID: "sub-page-" + strconv.Itoa(i), ConnectionID: sub.conn,
			ClientStateHash: []byte{1}, Resource: "me/messages", ExpiresAt: now.Add(sub.in)}); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := st.UpsertOrg(ctx, "o-page", "Paging", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateEndpoint(ctx, store.Endpoint{ID: "we-page", OrgID: "o-page", URL: "https://hooks.example.com/outlookd", Events: []string{"*"}}, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := st.AddEvent(ctx, store.Event{ID: "evt-page-" + strconv.Itoa(i), ConnectionID: "conn-page-1", Type: "mail.changed"}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := st.ClaimDeliveries(ctx, 2, time.Minute)
	if err != nil || len(claimed) != 2 {
		t.Fatalf("claimed %d deliveries (%v), want 2", len(claimed), err)
	}
	if err := st.DeliveryDone(ctx, claimed[0].EndpointID, claimed[0].Seq, true, "", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if err := st.DeliveryDone(ctx, claimed[1].EndpointID, claimed[1].Seq, false, "endpoint answered 500", time.Time{}, true); err != nil {
		t.Fatal(err)
	}

	flat := func(cs []store.Count, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, strings.Join(c.Values, "/")+"="+strconv.FormatInt(c.N, 10))
		}
		slices.Sort(out)
		return out
	}
	emptyInbox := flat(st.CountInbox(ctx))
	emptyAge := flat(st.InboxAge(ctx))

	ib := store.NewInbox(st)
	err = ib.Add(ctx, []store.InboxEntry{{ConnectionID: "conn-page-1", Signal: "changes"}, {ConnectionID: "conn-page-1", Signal: "changes"}})
	ib.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `UPDATE notification_inbox SET received_at = now() - interval '90 seconds' WHERE seq = (SELECT min(seq) FROM notification_inbox)`); err != nil {
		t.Fatal(err)
	}
	age := flat(st.InboxAge(ctx))

	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"subscriptions", flat(st.CountSubscriptions(ctx)), []string{"expired=1", "later=1", "under_24h=1", "under_6h=2"}},
		{"deliveries", flat(st.CountDeliveries(ctx)), []string{"parked=1", "pending=2"}},
		{"empty inbox", emptyInbox, []string{"=0"}},
		{"empty inbox age", emptyAge, []string{"=0"}},
		{"inbox", flat(st.CountInbox(ctx)), []string{"=2"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if len(age) != 1 || (age[0] != "=90" && age[0] != "=91") {
		t.Errorf("inbox age = %v, want the oldest entry's 90 seconds", age)
	}
}
