package store_test

import (
	"context"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

// TestEndpointsMigration: the migration that makes webhook endpoints many
// keeps an organisation's one endpoint (signing with the organisation's
// secret), its events' delivery states as the endpoint's deliveries, and
// goes back down with them.
func TestEndpointsMigration(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	names, err := fs.Glob(os.DirFS("migrations"), "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var version int32
	for _, n := range names {
		if strings.HasSuffix(n, "_webhook_endpoints.sql") {
			v, _ := strconv.Atoi(n[:3])
			version = int32(v)
		}
	}
	if version == 0 {
		t.Fatal("no webhook endpoints migration")
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, "schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(os.DirFS("migrations")); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, version-1); err != nil {
		t.Fatalf("down to %d: %v", version-1, err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO orgs (id, name) VALUES ('acme', 'acme'), ('globex', 'globex')`)
	exec(`INSERT INTO connections (id, org_id, owner_id, state) VALUES ('c1', 'acme', 'ada', 'active'), ('c2', 'globex', 'eve', 'active')`)
	exec(`INSERT INTO webhook_endpoints (org_id, url) VALUES ('acme', 'https://app.example/hooks')`)
	exec(`INSERT INTO events (id, connection_id, type) VALUES ('e1', 'c1', 'send.sent'), ('e2', 'c1', 'message.created'), ('e3', 'c1', 'send.failed'), ('g1', 'c2', 'send.sent')`)
	exec(`UPDATE events SET delivery = 'delivered', attempts = 1 WHERE id = 'e1'`)
	exec(`UPDATE events SET delivery = 'parked', attempts = 34, last_error = 'endpoint answered 500' WHERE id = 'e3'`)
	if err := m.MigrateTo(ctx, version); err != nil {
		t.Fatalf("up to %d: %v", version, err)
	}
	st, err := store.Open(ctx, dsn, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eps, err := st.ListEndpoints(ctx, "acme")
	if err != nil || len(eps) != 1 {
		t.Fatalf("endpoints after the migration: %+v %v", eps, err)
	}
	ep := eps[0]
	if !ep.OrgSecret || ep.URL != "https://app.example/hooks" || len(ep.Events) != 1 || ep.Events[0] != "*" ||
		ep.Delivered != 1 || ep.Parked != 1 || ep.Pending != 1 || ep.LastError != "endpoint answered 500" {
		t.Errorf("the migrated endpoint: %+v", ep)
	}
	// New events reach it as before.
	if err := st.AddEvent(ctx, store.Event{ID: "e4", ConnectionID: "c1", Type: "connection.disconnected"}); err != nil {
		t.Fatal(err)
	}
	if ep, _ := st.GetEndpoint(ctx, "acme", ep.ID); ep.Pending != 2 {
		t.Errorf("a new event is not queued for the migrated endpoint: %+v", ep)
	}
	st.Close()
	// And back down: one endpoint per organisation, the states on the events.
	if err := m.MigrateTo(ctx, version-1); err != nil {
		t.Fatalf("down again: %v", err)
	}
	var delivered, parked, pending int
	if err := conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE delivery = 'delivered'), count(*) FILTER (WHERE delivery = 'parked'),
		count(*) FILTER (WHERE delivery = 'pending') FROM events`).Scan(&delivered, &parked, &pending); err != nil {
		t.Fatal(err)
	}
	if delivered != 1 || parked != 1 || pending != 2 {
		t.Errorf("down: %d delivered, %d parked, %d pending", delivered, parked, pending)
	}
	if err := m.MigrateTo(ctx, version); err != nil {
		t.Fatalf("up again: %v", err)
	}
}
