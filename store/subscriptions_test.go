package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/outlookd/outlookd/store"
)

// TestMailboxSubscriptions: an application connection's subscriptions are
// each its mailbox's: listed by connection (all) or by mailbox (one), and
// a mailbox's retention (keep or delete) forgets its subscriptions alone.
func TestMailboxSubscriptions(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	if err := st.CreateConnection(ctx, store.Connection{ID: "c-app", OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	boxes := []string{"mbx-a", "mbx-b", "mbx-c"}
	for _, id := range boxes {
		if err := st.AttachMailbox(ctx, store.Mailbox{ID: id, ConnectionID: "c-app", Address: id + "@contoso.example"}); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveSubscription(ctx, store.Subscription{ID: "sub-" + id, ConnectionID: "c-app", MailboxID: id, ClientStateHash: []byte(id),
			Resource: "users/" + id + "/messages", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(mailbox string) []string {
		subs, err := st.ListSubscriptions(ctx, "c-app", mailbox)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range subs {
			if s.ConnectionID != "c-app" || s.MailboxID == "" {
				t.Errorf("subscription %+v", s)
			}
			out = append(out, s.ID)
		}
		return out
	}
	if got := ids(""); len(got) != 3 {
		t.Errorf("the connection's subscriptions: %v", got)
	}
	if got := ids("mbx-b"); len(got) != 1 || got[0] != "sub-mbx-b" {
		t.Errorf("mbx-b's subscriptions: %v", got)
	}
	if sub, err := st.GetSubscription(ctx, "sub-mbx-c"); err != nil || sub.MailboxID != "mbx-c" {
		t.Errorf("sub-mbx-c: %+v %v", sub, err)
	}
	if err := st.Detach(ctx, "mbx-a"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteMail(ctx, "mbx-b"); err != nil {
		t.Fatal(err)
	}
	if got := ids(""); len(got) != 1 || got[0] != "sub-mbx-c" {
		t.Errorf("after mbx-a kept and mbx-b deleted: %v", got)
	}
}
