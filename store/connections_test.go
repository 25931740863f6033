package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
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

// TestAServiceAccountClaimsNoMailbox: a service account's connection names
// the account it signs in as but syncs no mailbox of its own, so it claims
// none: the account's own mailbox may be connected (delegated) before or
// after, and the account may sign in for more than one connection; two
// delegated connections of one mailbox are still refused, and so is
// attaching a mailbox a delegated connection syncs.
func TestAServiceAccountClaimsNoMailbox(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		modes []string // connections signing in as ada, in order
		taken int      // index of the one refused, -1 for none
	}{
		{"delegated then service account", []string{"delegated", "service_account"}, -1},
		{"service account then delegated", []string{"service_account", "delegated"}, -1},
		{"two service accounts", []string{"service_account", "service_account"}, -1},
		{"two delegated", []string{"delegated", "service_account", "delegated"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t)
			for i, mode := range tt.modes {
				id := fmt.Sprintf("c%d", i)
				if err := st.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: "u", State: "connecting", Mode: mode}); err != nil {
					t.Fatal(err)
				}
				err := st.UpdateConnection(ctx, id, store.ConnectionUpdate{State: "active", Mailbox: "Ada@contoso.example", UserID: "u-ada"})
				if want := i == tt.taken; errors.Is(err, store.ErrMailboxTaken) != want || !want && err != nil {
					t.Fatalf("%s connection %d signing in as ada: %v", mode, i, err)
				}
			}
			svc := "c" + fmt.Sprint(slices.Index(tt.modes, "service_account"))
			err := st.AttachMailbox(ctx, store.Mailbox{ID: "mbx-ada", ConnectionID: svc, Address: "ada@contoso.example"})
			if delegated := slices.Contains(tt.modes, "delegated"); errors.Is(err, store.ErrMailboxTaken) != delegated || !delegated && err != nil {
				t.Errorf("attaching ada's mailbox (delegated connection: %t): %v", delegated, err)
			}
		})
	}
}

// TestOneApplicationConnectionPerTenant: creates of an organisation's
// application connection for one tenant at once, from two processes, make
// one; the others are refused naming it. Another tenant, another
// organisation, and the tenant again once its connection is disconnected,
// are free.
func TestOneApplicationConnectionPerTenant(t *testing.T) {
	ctx := context.Background()
	stores := twoProcesses(t)
	app := func(id, org, tenant string) store.Connection {
		return store.Connection{ID: id, OrgID: org, OwnerID: "it", State: "active", Mode: "application", TenantID: tenant, GrantedScopes: []string{"Mail.Read"}}
	}
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = stores[i%2].CreateApplicationConnection(ctx, app(fmt.Sprintf("conn_app%d", i), "o", "t1"))
		})
	}
	wg.Wait()
	var made []string
	refused := map[string]int{}
	for i, err := range errs {
		var tc *store.TenantConnectedError
		switch {
		case err == nil:
			made = append(made, fmt.Sprintf("conn_app%d", i))
		case errors.As(err, &tc):
			refused[tc.ConnectionID]++
		default:
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if len(made) != 1 || refused[made[0]] != n-1 {
		t.Fatalf("made %v, refused naming %v", made, refused)
	}
	got, err := stores[0].GetConnection(ctx, made[0])
	if err != nil || got.TenantID != "t1" || len(got.GrantedScopes) != 1 {
		t.Errorf("the connection made: %+v %v", got, err)
	}
	for _, c := range []store.Connection{app("conn_other_tenant", "o", "t2"), app("conn_other_org", "o2", "t1")} {
		if err := stores[1].CreateApplicationConnection(ctx, c); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
	}
	if err := stores[0].UpdateConnection(ctx, made[0], store.ConnectionUpdate{State: "disconnected"}); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].CreateApplicationConnection(ctx, app("conn_again", "o", "t1")); err != nil {
		t.Errorf("the tenant again after a disconnect: %v", err)
	}
}
