package store_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

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
