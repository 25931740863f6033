package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

func TestClaimingAMailboxTwice(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	for _, id := range []string{"a", "b"} {
		if err := st.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: id, State: "connecting", Mode: "delegated"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.UpdateConnection(ctx, "a", store.ConnectionUpdate{State: "active", Mailbox: "Ada@Contoso.example", GrantedScopes: []string{"Mail.Read"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateConnection(ctx, "b", store.ConnectionUpdate{Mailbox: "ada@contoso.example"}); !errors.Is(err, store.ErrMailboxTaken) {
		t.Fatalf("second claim: %v", err)
	}
	c, _ := st.GetConnection(ctx, "b")
	if c.Mailbox != "" {
		t.Errorf("a refused claim was half-applied: %+v", c)
	}
	if err := st.UpdateConnection(ctx, "missing", store.ConnectionUpdate{State: "active"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestConnectionsRegistryConstraints(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) error {
		_, err := st.Pool().Exec(ctx, sql, args...)
		return err
	}
	insert := `INSERT INTO connections (id, org_id, owner_id, state, mailbox) VALUES ($1, 'org', 'u', $2, $3)`
	if err := exec(insert, "c1", "active", "Ada@Contoso.com"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		state   string
		mailbox any
		code    string // SQLSTATE, "" for success
	}{
		{"same mailbox, other case, while live", "c2", "active", "ada@contoso.com", "23505"},
		{"same mailbox once disconnected", "c3", "disconnected", "ada@contoso.com", ""},
		{"no mailbox yet", "c4", "pending_consent", nil, ""},
		{"another pending without mailbox", "c5", "pending_consent", nil, ""},
		{"unknown state", "c6", "sleeping", "b@contoso.com", "23514"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := exec(insert, tt.id, tt.state, tt.mailbox)
			var pgErr *pgconn.PgError
			switch {
			case tt.code == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != tt.code):
				t.Fatalf("want SQLSTATE %s, got %v", tt.code, err)
			}
		})
	}
}
