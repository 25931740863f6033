// Package enginetest runs the whole engine in-process for integration
// tests: graphsim, a worker on its own task queue, and the consent service,
// against the real Temporal, Vault and Postgres of the test stack.
package enginetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/tracing"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/webhook"
	"github.com/outlookd/outlookd/worker"
	"github.com/outlookd/outlookd/workflows"
)

// AdminRedirectURI is the app's registered admin consent redirect URI;
// as with simtest.RedirectURI, nothing listens there.
const AdminRedirectURI = "http://127.0.0.1:9/admin-callback"

// Engine is a running engine with its simulated tenant.
type Engine struct {
	*simtest.Tenant
	Temporal  client.Client
	Store     *store.Store
	Vault     *vault.Client
	Connect   *connect.Service
	Acts      *activities.Activities
	Receiver  *webhook.Receiver
	TaskQueue string

	t          testing.TB
	stopWorker context.CancelFunc
	workerDone chan struct{}
}

// Option changes how an engine is built.
type Option func(*options)

type options struct {
	tracer    trace.TracerProvider
	vaultAddr func(addr string) string
}

// VaultVia points the engine at the address via returns for the test
// Vault's, for a test that puts a proxy in front of Vault (to count or
// cut its requests).
func VaultVia(via func(addr string) string) Option {
	return func(o *options) { o.vaultAddr = via }
}

// Traced traces the engine's workflows, activities and Graph requests with
// tp, as `outlookd serve` does when tracing is on.
func Traced(tp trace.TracerProvider) Option { return func(o *options) { o.tracer = tp } }

// StartLive is Start with a webhook receiver: connections subscribe and
// sync on notifications.
func StartLive(t testing.TB, simOpts graphsim.Options, wfOpts workflows.Options, opts ...Option) *Engine {
	t.Helper()
	return live(t, wfOpts, func(wfOpts workflows.Options) *Engine { return Start(t, simOpts, wfOpts, opts...) })
}

// StartOrgLive is StartOrg with a webhook receiver: connections, and the
// mailboxes of application connections, subscribe and sync on
// notifications.
func StartOrgLive(t testing.TB, simOpts graphsim.Options, wfOpts workflows.Options) (*Engine, *simtest.Org) {
	t.Helper()
	var org *simtest.Org
	e := live(t, wfOpts, func(wfOpts workflows.Options) *Engine {
		var e *Engine
		e, org = StartOrg(t, simOpts, wfOpts)
		return e
	})
	return e, org
}

// live starts an engine with a webhook receiver and its forwarder.
func live(t testing.TB, wfOpts workflows.Options, start func(workflows.Options) *Engine) *Engine {
	t.Helper()
	recv := &webhook.Receiver{Log: discard()}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/graph/notifications", recv.Notifications)
	mux.HandleFunc("/v1/graph/lifecycle", recv.Lifecycle)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	wfOpts.NotificationURL = srv.URL + "/v1/graph/notifications"
	wfOpts.LifecycleURL = srv.URL + "/v1/graph/lifecycle"
	e := start(wfOpts)
	recv.Store, recv.Inbox = e.Store, store.NewInbox(e.Store)
	t.Cleanup(recv.Inbox.Close)
	fwd := &webhook.Forwarder{Store: e.Store, Temporal: e.Temporal, Log: discard()}
	recv.Forwarder = fwd
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = fwd.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e.Receiver = recv
	return e
}

// Start brings an engine up; it stops with the test.
func Start(t testing.TB, simOpts graphsim.Options, wfOpts workflows.Options, opts ...Option) *Engine {
	t.Helper()
	return startOn(t, simtest.Start(t, simOpts), simOpts, wfOpts, opts...)
}

// StartOrg is Start against a tenant prepared for shared mailboxes: a
// service account with rights on the shared mailbox (simtest.Org).
func StartOrg(t testing.TB, simOpts graphsim.Options, wfOpts workflows.Options) (*Engine, *simtest.Org) {
	t.Helper()
	org := simtest.StartOrg(t, simOpts)
	return startOn(t, org.Tenant, simOpts, wfOpts), org
}

func startOn(t testing.TB, sim *simtest.Tenant, simOpts graphsim.Options, wfOpts workflows.Options, opts ...Option) *Engine {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	ve := testenv.Vault(t)
	st, err := store.Open(ctx, dsn, 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	vaultAddr := ve.Addr
	if o.vaultAddr != nil {
		vaultAddr = o.vaultAddr(vaultAddr)
	}
	vc, err := vault.New(vault.Options{Addr: vaultAddr, RoleID: ve.RoleID, SecretIDFile: ve.SecretIDFile, KVMount: "secret",
		Prefix: "outlookd/test-" + randomHex(4), Timeout: 10 * time.Second, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	vctx, cancelVault := context.WithCancel(ctx)
	t.Cleanup(cancelVault)
	go vc.Run(vctx)
	for deadline := time.Now().Add(10 * time.Second); vc.Health(ctx) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("vault login did not succeed")
		}
	}
	copts := client.Options{HostPort: testenv.Temporal(t), Logger: tlog.NewStructuredLogger(discard())}
	var hc *http.Client
	if o.tracer != nil {
		ti, err := tracing.TemporalInterceptor(o.tracer)
		if err != nil {
			t.Fatal(err)
		}
		copts.Interceptors = append(copts.Interceptors, ti)
		hc = &http.Client{Transport: tracing.Transport(o.tracer, http.DefaultTransport)}
	}
	tc, err := client.Dial(copts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)

	if err := vc.Tokens().PutAppSecret(ctx, sim.App.Secrets[0].Value); err != nil {
		t.Fatal(err)
	}
	if err := sim.Sim.AddRedirectURI(sim.App.ClientID, AdminRedirectURI); err != nil {
		t.Fatal(err)
	}
	idc := identity.Config{AuthorityURL: sim.Sim.AuthorityURL(), Tenant: "common", ClientID: sim.App.ClientID, RedirectURL: simtest.RedirectURI,
		AdminRedirectURL: AdminRedirectURI}
	e := &Engine{
		Tenant: sim, Temporal: tc, Store: st, Vault: vc, TaskQueue: "outlookd-test-" + randomHex(6), t: t,
	}
	e.Acts = &activities.Activities{
		Tokens: vc.Tokens(), Store: st, Identity: idc, ClientSecret: vc.Tokens().AppSecret, GraphURL: sim.Sim.GraphURL(), HTTP: hc, Workflows: tc,
		// The engine keeps to the limits the simulator enforces (Outlook's
		// figures unless a test or benchmark sets others).
		Limits: activities.NewMailboxLimits(st, simOpts.MailboxConcurrency, simOpts.MailboxRequests, simOpts.MailboxWindow).
			SetApp(idc.ClientID, simOpts.AppRequests, simOpts.AppWindow),
	}
	e.Connect = &connect.Service{Temporal: tc, Tokens: vc.Tokens(), Store: st, Identity: idc, Options: wfOpts, TaskQueue: e.TaskQueue,
		Apps: activities.Credentials{A: e.Acts}}
	e.StartWorker()
	t.Cleanup(e.StopWorker)
	return e
}

// StartWorker starts the in-process worker.
func (e *Engine) StartWorker() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stopWorker = cancel
	e.workerDone = make(chan struct{})
	go func() {
		defer close(e.workerDone)
		_ = worker.Run(ctx, e.Temporal, worker.Options{TaskQueue: e.TaskQueue, Logger: discard(), Register: worker.Register(e.Acts)})
	}()
}

// StopWorker stops the worker, as if its process died.
func (e *Engine) StopWorker() {
	if e.stopWorker != nil {
		e.stopWorker()
		<-e.workerDone
		e.stopWorker = nil
	}
}

// Connect creates a connection and consents as user through the automatic
// path, returning the connection ID once consent is complete.
func (e *Engine) ConnectUser(user string, settings workflows.Settings) (string, connect.Outcome) {
	e.t.Helper()
	ctx := context.Background()
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "org-1", OwnerID: "owner-" + user, Settings: settings, LoginHint: user})
	if err != nil {
		e.t.Fatal(err)
	}
	q := simtest.Authorize(e.t, created.AuthorizeURL)
	out, err := e.Connect.Callback(ctx, q)
	if err != nil {
		e.t.Fatalf("callback: %v", err)
	}
	return created.ConnectionID, out
}

// Status queries a connection's workflow.
func (e *Engine) Status(connectionID string) workflows.Status {
	e.t.Helper()
	return e.query(workflows.ConnectionWorkflowID(connectionID))
}

// MailboxStatus queries an attached mailbox's workflow.
func (e *Engine) MailboxStatus(mailboxID string) workflows.Status {
	e.t.Helper()
	return e.query(workflows.MailboxWorkflowID(mailboxID))
}

func (e *Engine) query(workflowID string) workflows.Status {
	e.t.Helper()
	st, err := e.tryQuery(workflowID)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// tryQuery reads a workflow's status.
func (e *Engine) tryQuery(workflowID string) (workflows.Status, error) {
	var st workflows.Status
	v, err := e.Temporal.QueryWorkflow(context.Background(), workflowID, "", workflows.QueryStatus)
	if err == nil {
		err = v.Get(&st)
	}
	return st, err
}

// WaitFor polls the status until cond holds.
func (e *Engine) WaitFor(connectionID string, timeout time.Duration, what string, cond func(workflows.Status) bool) workflows.Status {
	e.t.Helper()
	return e.waitFor(workflows.ConnectionWorkflowID(connectionID), timeout, what, cond)
}

// WaitForMailbox polls an attached mailbox's status until cond holds.
func (e *Engine) WaitForMailbox(mailboxID string, timeout time.Duration, what string, cond func(workflows.Status) bool) workflows.Status {
	e.t.Helper()
	return e.waitFor(workflows.MailboxWorkflowID(mailboxID), timeout, what, cond)
}

func (e *Engine) waitFor(workflowID string, timeout time.Duration, what string, cond func(workflows.Status) bool) workflows.Status {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// A query the worker could not answer in the server's time (a
		// busy worker) is asked again until the deadline.
		st, err := e.tryQuery(workflowID)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s did not happen within %s; status: %+v (last query error: %v)", what, timeout, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// AuthorizeQuery is the redirect query of an authorize URL.
func (e *Engine) AuthorizeQuery(authURL string) url.Values { return simtest.Authorize(e.t, authURL) }

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
