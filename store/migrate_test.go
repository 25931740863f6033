package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

func TestMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	dsn := testenv.Postgres(t) // already migrated once
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			from, to, err := store.Migrate(ctx, dsn)
			if err == nil && (from != to || int(to) != store.LatestVersion()) {
				err = errors.New("migrate changed an up-to-date schema")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
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
