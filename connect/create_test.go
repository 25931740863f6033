package connect_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// TestCreateHappensWholeOrNotAtAll: a create that fails because Vault or
// Temporal is down leaves no registry row and no event, so the user may
// connect again at once (nothing counts against them) once it is back.
func TestCreateHappensWholeOrNotAtAll(t *testing.T) {
	e := enginetest.Start(t, graphsim.Options{}, workflows.Options{})
	ctx := context.Background()

	// Vault behind a proxy that can be cut.
	ve := testenv.Vault(t)
	u, err := url.Parse(ve.Addr)
	if err != nil {
		t.Fatal(err)
	}
	vp := testenv.NewProxy(t, u.Host)
	vc, err := vault.New(vault.Options{Addr: "http://" + vp.Addr(), RoleID: ve.RoleID, SecretIDFile: ve.SecretIDFile, KVMount: "secret",
		Prefix: "outlookd/test-create", Timeout: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go vc.Run(vctx)
	for deadline := time.Now().Add(10 * time.Second); vc.Health(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("vault through the proxy never became healthy")
		}
	}
	tp := testenv.NewProxy(t, testenv.Temporal(t))
	tc, err := client.Dial(client.Options{HostPort: tp.Addr(), Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	svc := *e.Connect
	svc.Tokens, svc.Temporal = vc.Tokens(), tc
	req := connect.Request{OrgID: "org-create", OwnerID: "u-create", Settings: workflows.Settings{Features: workflows.Features{Read: true}}, MaxPerOwner: 1}
	left := func(what string) {
		t.Helper()
		rows, err := e.Store.ListConnections(ctx, store.ConnectionFilter{OrgID: "org-create"})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 0 {
			t.Errorf("%s left %d registry rows: %+v", what, len(rows), rows[0])
		}
	}
	for _, tc := range []struct {
		name     string
		down, up func()
	}{
		{"Vault down", vp.Down, vp.Up},
		{"Temporal down", tp.Down, tp.Up},
	} {
		tc.down()
		_, err := svc.Create(ctx, req)
		tc.up()
		if err == nil {
			t.Fatalf("%s: the create succeeded", tc.name)
		}
		left(tc.name)
	}
	// Everything is back: the same user connects at once (through clients
	// that were never cut, so that no reconnection backoff is measured).
	created, err := e.Connect.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(created.AuthorizeURL, "authorize") {
		t.Errorf("authorize URL %q", created.AuthorizeURL)
	}
	if _, err := e.Store.GetConnection(ctx, created.ConnectionID); err != nil {
		t.Errorf("the create after recovery: %v", err)
	}
	if err := e.Store.DeleteUnstarted(ctx, "conn_none"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting an unknown connection: %v", err)
	}
}
