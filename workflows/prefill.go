package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"
)

// Onboarding a tenant (app-prefill). An application connection backfills
// its joining users' mailboxes ahead of their workflows, many mailboxes
// side by side in one activity (PrefillMailboxes), and starts each
// mailbox's workflow only once its mailbox was: the workflow is handed
// what was done (MailboxInput.Backfilled) and begins live, from the
// cursors the backfill committed. The backfill so runs at the pace Graph's
// limits allow, not at the pace Temporal starts workflows, and a mailbox's
// onboarding costs its workflow no backfill activity
// (docs/application.md#onboarding).

// PrefillInput asks for up to Limit joining users' mailboxes to be
// attached and backfilled, AtOnce side by side (one begun as another
// ends), each for up to Budget, none begun after Window.
type PrefillInput struct {
	// Backfill is every mailbox's backfill but its mailbox and user: the
	// connection, the root folders, the window and the storage policy.
	Backfill BackfillInput `json:"backfill"`
	Limit    int           `json:"limit"`
	AtOnce   int           `json:"atOnce"`
	// Budget bounds one mailbox's backfill; what a larger mailbox leaves is
	// its workflow's to finish, from the cursors committed.
	Budget time.Duration `json:"budget"`
	// Window bounds the call: no mailbox is begun after it (0: none).
	Window time.Duration `json:"window,omitempty"`
}

// PrefillResult is what one PrefillMailboxes did.
type PrefillResult struct {
	// Mailboxes were looked at; Done of them were backfilled whole (the
	// others are their workflows' to finish, or were excluded).
	Mailboxes int   `json:"mailboxes"`
	Done      int   `json:"done"`
	Messages  int64 `json:"messages"`
	// More: there may be joining users left to backfill.
	More bool `json:"more"`
}

// Prefilled is a mailbox's backfill done ahead of its workflow: the window
// covered from WindowStart for Roots, each folder's progress, the roots the
// mailbox lacks, and when it ended. Its backfill.completed event (run 1)
// was recorded with it.
type Prefilled struct {
	WindowStart time.Time        `json:"windowStart"`
	Roots       []string         `json:"roots,omitempty"`
	Folders     []FolderProgress `json:"folders"`
	Missing     []string         `json:"missing,omitempty"`
	Started     time.Time        `json:"started"`
	Completed   time.Time        `json:"completed"`
}

// PrefillState is where an application connection's onboarding backfill
// stands.
type PrefillState struct {
	// Running: a PrefillMailboxes is under way; More: another is due.
	Running bool `json:"running,omitempty"`
	More    bool `json:"more,omitempty"`
	// Mailboxes looked at, Done backfilled whole, and their Messages.
	Mailboxes int64   `json:"mailboxes,omitempty"`
	Done      int64   `json:"done,omitempty"`
	Messages  int64   `json:"messages,omitempty"`
	LastError string  `json:"lastError,omitempty"`
	Backoff   Backoff `json:"backoff"`
}

// How an application connection backfills its joining mailboxes ahead of
// their workflows: up to prefillBatch per activity, begun within
// prefillWindow, prefillAtOnce side by side (each within its own budget of
// 4 concurrent Graph requests), each for up to inlineBudget, as a
// mailbox's own first backfill activity. A run of the connection's
// workflow runs up to prefillBatchesPerRun of them back to back before it
// lets the main loop start the next run (continue-as-new), so that its
// history stays bounded.
const (
	prefillBatch         = 2000
	prefillWindow        = time.Minute
	prefillAtOnce        = 64
	prefillBatchesPerRun = 25
)

// ActivityPrefillMailboxes is the activity's name.
const ActivityPrefillMailboxes = "PrefillMailboxes"

// prefillMailboxes backfills a batch: its heartbeat says the worker is
// alive; a batch lost with its worker is taken up again from what it
// recorded (each mailbox's backfill from its cursors).
var prefillMailboxes = call[PrefillInput, PrefillResult]{ActivityPrefillMailboxes, graphCall(10 * time.Minute)}

// prefills says whether this run backfills joining mailboxes ahead of
// their workflows (app-prefill). The SDK keeps the version a run first
// got: asking again costs no marker.
func (c *connection) prefills(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "app-prefill", workflow.DefaultVersion, 1) == 1
}

func (c *connection) prefillDue(ctx workflow.Context) (time.Time, bool) {
	if !c.isApplication() {
		return time.Time{}, false
	}
	p := c.s.App.Prefill
	if !p.More || p.Running || c.canSuggested(ctx) {
		return time.Time{}, false // (the next run goes on with it)
	}
	return p.Backoff.RetryAt, true
}

// startPrefill starts the backfill of joining mailboxes: a goroutine runs
// PrefillMailboxes batches back to back, on its own, while the main loop
// goes on (discovery applies the changes each batch made ready, starting
// those mailboxes' workflows, while the next batch is backfilled), and
// books what each did. It ends when no joining mailbox is left, after
// prefillBatchesPerRun batches or once the history asks for a new run, or
// at an error (retried after a backoff).
func (c *connection) startPrefill(ctx workflow.Context) {
	p := &c.s.App.Prefill
	p.Running, p.More = true, false
	// Only the disconnect saga cancels it, and waits for it to end.
	cctx, cancel := workflow.WithCancel(ctx)
	c.cancelPrefill = cancel
	workflow.Go(cctx, func(gctx workflow.Context) {
		defer func() { p.Running, c.cancelPrefill = false, nil }()
		for range prefillBatchesPerRun {
			// A leave being applied waits for the batch under way and
			// holds the next.
			if workflow.Await(gctx, func() bool { return !c.prefillHeld }) != nil {
				return
			}
			if c.canSuggested(gctx) {
				break // the rest in the next run
			}
			c.prefillBatch = true
			res, err := prefillMailboxes.with(backfillPage(c.opts.HeartbeatTimeout)).run(gctx, c.prefillInput(gctx))
			c.prefillBatch = false
			// Discovery starts what is ready.
			c.wakeDiscovery()
			if err != nil {
				p.LastError, p.More = err.Error(), true
				if c.s.State == StateActive && !c.onActivityError(gctx, err) {
					p.Backoff.failed(workflow.Now(gctx))
				}
				return
			}
			p.LastError, p.Backoff = "", Backoff{}
			p.Mailboxes += int64(res.Mailboxes)
			p.Done += int64(res.Done)
			p.Messages += res.Messages
			if !res.More || c.s.State != StateActive {
				return
			}
		}
		p.More = true // the rest in the next run
	})
}

// wakeDiscovery brings back a discovery that waits (Held) for a batch to
// end: it applies what is ready, or ends its round. A discovery under way
// comes back anyway.
func (c *connection) wakeDiscovery() {
	if d := &c.s.App.Discovery; d.Held {
		d.Held, d.More = false, true
	}
}

// prefillInput is a batch's input: the connection's settings as the
// mailboxes' workflows will read them (Mailbox), the window from now.
func (c *connection) prefillInput(ctx workflow.Context) PrefillInput {
	s := c.s.Settings.WithDefaults()
	return PrefillInput{Backfill: BackfillInput{
		ConnectionID: c.s.ID, Roots: slices.Clone(s.Folders), WindowStart: c.backfillTarget(ctx), StoreBodies: s.StoreBodies(),
		ContactFilter: s.ContactFilter, Bodies: s.Bodies, PageSize: c.opts.PageSize, Concurrency: c.opts.FolderConcurrency,
	}, Limit: prefillBatch, AtOnce: prefillAtOnce, Budget: inlineBudget, Window: prefillWindow}
}

// holdPrefill waits for the batch under way to end and holds the next
// until release is called: a leaving mailbox may be one the batch
// attached, and it is detached once nothing more is written to it.
func (c *connection) holdPrefill(ctx workflow.Context) (release func(), err error) {
	c.prefillHeld = true
	release = func() { c.prefillHeld = false }
	if err := workflow.Await(ctx, func() bool { return !c.prefillBatch }); err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// prefillRunning says whether a backfill of joining mailboxes runs.
func (c *connection) prefillRunning() bool { return c.s.App != nil && c.s.App.Prefill.Running }

// cancelPrefillAndWait is the disconnect saga's step: the batch under way
// is cancelled and waited for, so that nothing is written once the
// mailboxes are detached.
func (c *connection) cancelPrefillAndWait(ctx workflow.Context) error {
	if c.cancelPrefill != nil {
		c.cancelPrefill()
	}
	return workflow.Await(ctx, func() bool { return !c.s.App.Prefill.Running })
}

// prefilledBackfill is the backfill state of a mailbox whose backfill was
// done ahead of its workflow: run 1, covering the window for its roots.
func prefilledBackfill(p *Prefilled) BackfillState {
	b := BackfillState{Runs: 1, Covered: p.WindowStart, Target: p.WindowStart, Roots: p.Roots, Missing: p.Missing,
		Started: p.Started, Completed: p.Completed, Folders: map[string]FolderProgress{}}
	for _, f := range p.Folders {
		b.Folders[f.ID] = f
	}
	return b
}
