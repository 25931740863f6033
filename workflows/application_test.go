package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// dirUser is a user of the fake tenant.
type dirUser struct {
	id       string
	mailbox  bool
	policy   bool // an application access policy keeps the app out
	shared   bool
	disabled bool
}

// fakeDirectory is the tenant and the registry's directory tables, in
// memory: DiscoverPage serves the changed users three at a time, as
// /users/delta pages, and records them as the store does.
type fakeDirectory struct {
	mu      sync.Mutex
	users   map[string]dirUser
	changed []string // user IDs not yet served, in order
	rows    map[string]*dirRow
	nextID  int
	pages   int
	started []string // mailbox IDs started
	cancels int
	closed  bool // the disconnect closed the directory
	// block keeps the mailboxes' workflows running until cancelled.
	block     bool
	signalled []string // mailbox IDs told the credential came back, "pause:" and the ID told it was refused
	// onPage runs inside each page (a hook for the test).
	onPage func(n int)
	// groups are the tenant's groups' transitive members; members the
	// selection's members as last read (DiscoverGroups), groupReads how
	// many reads there were.
	groups     map[string][]string
	members    map[string]bool
	groupReads int
	groupsErr  error
	// Backfills of joining mailboxes ahead of their workflows
	// (PrefillMailboxes): the batches run, the order in which mailboxes
	// were backfilled and started ("prefill:" or "start:" and the ID),
	// the inputs started, and a hook run inside each batch.
	prefills int
	// changesAtOnce, when set, is the most changes MailboxChanges hands
	// over at once (a smaller page than the workflow asks for).
	changesAtOnce int
	// inBatch: a batch runs; startsInBatch counts the starts asked for
	// while one ran.
	inBatch       bool
	startsInBatch int
	order         []string
	inputs        map[string]MailboxInput
	onPrefill     func(ctx context.Context, n int) error
	// undone names users whose mailboxes a batch leaves to their workflows.
	undone map[string]bool
	// onStart runs after each StartMailboxes, onCancel before each
	// mailbox's cancel (hooks for the test).
	onStart  func()
	onCancel func(workflowID string)
}

type dirRow struct {
	status, reason, mailboxID string
	// prefilled: backfilled ahead of the workflow (done: whole);
	// endedHere: detached by EndMailboxes, never started.
	prefilled, done, endedHere bool
}

// attached says whether a row's mailbox is attached and not detached: its
// workflow runs (syncing), or it was backfilled ahead and waits for its
// start.
func (r *dirRow) attached() bool {
	return r.status == "syncing" || r.status == "joining" && r.prefilled && !r.endedHere
}

func newFakeDirectory(users ...dirUser) *fakeDirectory {
	d := &fakeDirectory{users: map[string]dirUser{}, rows: map[string]*dirRow{}}
	for _, u := range users {
		d.users[u.id] = u
		d.changed = append(d.changed, u.id)
	}
	return d
}

func (d *fakeDirectory) join(u dirUser) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[u.id] = u
	d.changed = append(d.changed, u.id)
}

func (d *fakeDirectory) leave(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.users, id)
	d.changed = append(d.changed, id)
}

// want is the store's rule (store.ApplyDirectoryPage) in short.
func (d *fakeDirectory) apply(id string, want bool, reason string) {
	r := d.rows[id]
	if r == nil {
		r = &dirRow{}
		d.rows[id] = r
	}
	live := r.status == "joining" || r.status == "syncing"
	switch {
	case want && (live || r.status == "leaving"):
	case want:
		d.nextID++
		r.status, r.reason, r.mailboxID = "joining", "", fmt.Sprintf("mbx_%08d", d.nextID)
		r.prefilled, r.done = false, false
	case live:
		r.status, r.reason = "leaving", reason
	case r.status == "leaving":
	default:
		r.status, r.reason = "excluded", reason
	}
}

func (d *fakeDirectory) register(env *testsuite.TestWorkflowEnvironment, sel *Selection) {
	env.RegisterActivityWithOptions(func(ctx context.Context, in DiscoverPageInput) (DiscoverPageResult, error) {
		d.mu.Lock()
		d.pages++
		n, hook := d.pages, d.onPage
		batch := d.changed[:min(3, len(d.changed))]
		d.changed = d.changed[len(batch):]
		for _, id := range batch {
			u, ok := d.users[id]
			switch {
			case !ok:
				d.apply(id, false, "user_deleted")
			case len(in.Selection.Groups) > 0 && !d.members[id]:
				d.apply(id, false, "not_selected")
			case !u.mailbox:
				d.apply(id, false, "no_mailbox")
			case u.policy:
				d.apply(id, false, "access_policy")
			case u.shared && !in.Selection.Shared:
				d.apply(id, false, "shared_not_selected")
			case u.disabled && !u.shared:
				d.apply(id, false, "account_disabled")
			default:
				d.apply(id, true, "")
			}
		}
		done := len(d.changed) == 0
		d.mu.Unlock()
		if hook != nil {
			hook(n)
		}
		return DiscoverPageResult{Users: len(batch), RoundDone: done}, nil
	}, activity.RegisterOptions{Name: ActivityDiscoverPage})
	env.RegisterActivityWithOptions(func(ctx context.Context, in DiscoverGroupsInput) (DiscoverGroupsResult, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.groupReads++
		if d.groupsErr != nil {
			return DiscoverGroupsResult{}, d.groupsErr
		}
		now := map[string]bool{}
		for _, g := range in.Selection.Groups {
			for _, id := range d.groups[g] {
				now[id] = true
			}
		}
		var res DiscoverGroupsResult
		for id, r := range d.rows {
			switch {
			case now[id] && !d.members[id] && r.reason == "not_selected":
				d.apply(id, true, "")
				res.Joined++
			case !now[id] && d.members[id] && (r.status == "joining" || r.status == "syncing"):
				d.apply(id, false, "not_selected")
				res.Left++
			}
		}
		d.members, res.Members = now, len(now)
		return res, nil
	}, activity.RegisterOptions{Name: ActivityDiscoverGroups})
	env.RegisterActivityWithOptions(func(ctx context.Context, in MailboxChangesInput) (MailboxChangesResult, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		ids := make([]string, 0, len(d.rows))
		res := MailboxChangesResult{Changes: []MailboxChange{}}
		for id, r := range d.rows {
			switch {
			case r.status == "joining" && in.Prefilled && !r.prefilled:
				res.Held++
			case r.status == "joining" || r.status == "leaving":
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		limit := in.Limit
		if d.changesAtOnce > 0 {
			limit = min(limit, d.changesAtOnce)
		}
		for _, id := range ids[:min(limit, len(ids))] {
			r := d.rows[id]
			ch := MailboxChange{UserID: id, MailboxID: r.mailboxID, Address: id + "@contoso.example", Join: r.status == "joining"}
			if ch.Join && r.done {
				ch.Backfilled = &Prefilled{WindowStart: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Folders: []FolderProgress{{ID: "inbox", Fetched: 3, Done: true}}}
			}
			res.Changes = append(res.Changes, ch)
		}
		return res, nil
	}, activity.RegisterOptions{Name: ActivityMailboxChanges})
	env.RegisterActivityWithOptions(func(ctx context.Context, in PrefillInput) (PrefillResult, error) {
		d.mu.Lock()
		d.prefills++
		n, hook := d.prefills, d.onPrefill
		d.inBatch = true
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			d.inBatch = false
			d.mu.Unlock()
		}()
		if in.Backfill.ConnectionID == "" || in.Backfill.WindowStart.IsZero() || in.Limit <= 0 || in.AtOnce <= 0 || in.Budget <= 0 {
			return PrefillResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("a batch needs its connection, window and bounds: %+v", in), "test", nil)
		}
		if hook != nil {
			if err := hook(ctx, n); err != nil {
				return PrefillResult{}, err
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		var ids []string
		for id, r := range d.rows {
			if r.status == "joining" && !r.prefilled {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		// Two at a time, as the pages come three at a time: a tenant's
		// mailboxes take several batches.
		limit := min(in.Limit, 2)
		res := PrefillResult{More: len(ids) > limit}
		for _, id := range ids[:min(limit, len(ids))] {
			r := d.rows[id]
			r.prefilled, r.done = true, !d.undone[id]
			res.Mailboxes++
			if r.done {
				res.Done++
				res.Messages += 3
			}
			d.order = append(d.order, "prefill:"+r.mailboxID)
		}
		return res, nil
	}, activity.RegisterOptions{Name: ActivityPrefillMailboxes})
	env.RegisterActivityWithOptions(func(ctx context.Context, in AckMailboxChangesInput) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, ch := range in.Changes {
			r := d.rows[ch.UserID]
			switch {
			case ch.Join && r.status == "joining":
				r.status = "syncing"
			case !ch.Join && r.status == "leaving":
				r.status = "left"
			}
		}
		return nil
	}, activity.RegisterOptions{Name: ActivityAckMailboxChanges})
	env.RegisterActivityWithOptions(func(ctx context.Context, in ConnectionRef) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.closed = true
		d.order = append(d.order, "closed")
		return nil
	}, activity.RegisterOptions{Name: ActivityCloseDirectory})
	env.RegisterActivityWithOptions(func(ctx context.Context, in LiveMailboxesInput) (LiveMailboxesResult, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		var ids []string
		for _, r := range d.rows {
			if r.attached() && r.mailboxID > in.After {
				ids = append(ids, r.mailboxID)
			}
		}
		sort.Strings(ids)
		return LiveMailboxesResult{IDs: append([]string{}, ids[:min(in.Limit, len(ids))]...)}, nil
	}, activity.RegisterOptions{Name: ActivityLiveMailboxes})
	// Ending the mailboxes: a running workflow is cancelled (it detaches
	// itself), one backfilled ahead and never started is detached here.
	env.RegisterActivityWithOptions(func(ctx context.Context, in EndMailboxesInput) (EndMailboxesResult, error) {
		if in.Retention == "" || in.Limit <= 0 {
			return EndMailboxesResult{}, temporal.NewNonRetryableApplicationError(fmt.Sprintf("ending mailboxes needs a retention and a limit: %+v", in), "test", nil)
		}
		d.mu.Lock()
		byMailbox := map[string]*dirRow{}
		var ids []string
		for _, r := range d.rows {
			if r.attached() && r.mailboxID > in.After {
				ids = append(ids, r.mailboxID)
				byMailbox[r.mailboxID] = r
			}
		}
		sort.Strings(ids)
		ids = ids[:min(in.Limit, len(ids))]
		res := EndMailboxesResult{IDs: append([]string{}, ids...)}
		var running []string
		for _, id := range ids {
			if r := byMailbox[id]; r.status == "syncing" {
				running = append(running, id)
			} else {
				r.endedHere = true
				res.Detached = append(res.Detached, id)
			}
		}
		d.mu.Unlock()
		for _, id := range running {
			if d.onCancel != nil {
				d.onCancel(MailboxWorkflowID(id))
			}
			d.detached(MailboxWorkflowID(id))
		}
		return res, nil
	}, activity.RegisterOptions{Name: ActivityEndMailboxes})
	// The mailboxes' own workflows are Mailbox's tests' business: here
	// each start is counted, and each credential signal to a running one.
	env.RegisterActivityWithOptions(func(ctx context.Context, in StartMailboxesInput) error {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.onStart != nil {
			defer d.onStart()
		}
		if d.inBatch {
			d.startsInBatch++
		}
		for _, m := range in.Mailboxes {
			if in.TaskQueue == "" || m.Input.Mode != ModeApplication || m.Input.UserID == "" || m.Summary == "" {
				return temporal.NewNonRetryableApplicationError("a discovered mailbox starts in application mode with its user, on a task queue", "test", nil)
			}
			d.started = append(d.started, m.Input.ID)
			d.order = append(d.order, "start:"+m.Input.ID)
			if d.inputs == nil {
				d.inputs = map[string]MailboxInput{}
			}
			d.inputs[m.Input.ID] = m.Input
		}
		return nil
	}, activity.RegisterOptions{Name: ActivityStartMailboxes})
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", mock.Anything, mock.Anything).Return(func(_, wid, _, name string, arg any) error {
		sig, ok := arg.(CredentialSignal)
		if !ok || name != SignalCredential {
			return nil
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.block {
			// Its workflow has ended already.
			return errors.New("unknown external workflow execution")
		}
		id := strings.TrimPrefix(wid, MailboxWorkflowID(""))
		if sig.Dead {
			d.signalled = append(d.signalled, "pause:"+id+":"+sig.Reason)
		} else {
			d.signalled = append(d.signalled, id)
		}
		return nil
	})
	// A cancelled mailbox detaches (its own saga, in Mailbox's tests).
	env.OnRequestCancelExternalWorkflow(mock.Anything, mock.Anything, "").Return(func(_, wid, _ string) error {
		if d.onCancel != nil {
			d.onCancel(wid)
		}
		d.detached(wid)
		return nil
	})
}

// detached is a mailbox's saga: its row is no longer live.
func (d *fakeDirectory) detached(workflowID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cancels++
	for _, r := range d.rows {
		if MailboxWorkflowID(r.mailboxID) == workflowID && r.status == "syncing" {
			r.status = "left"
		}
	}
}

// statuses counts the directory's rows by status and reason.
func (d *fakeDirectory) statuses() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for _, r := range d.rows {
		out[r.status]++
		if r.reason != "" {
			out[r.status+":"+r.reason]++
		}
	}
	return out
}

func appInput(expires time.Time) ConnectionInput {
	in := ConnectionInput{ID: "c-app", OrgID: "org", OwnerID: "admin", Mode: ModeApplication, Settings: Settings{Features: Features{Read: true}},
		Application: &ApplicationInit{TenantID: "t-1", ClientID: "client-1", Roles: []string{"User.Read.All", "Mail.Read", "MailboxSettings.Read"}, SecretExpires: expires}}
	in.Options.DiscoverEvery = 15 * time.Minute
	return in
}

func tenantUsers() []dirUser {
	var us []dirUser
	for i := range 7 {
		us = append(us, dirUser{id: fmt.Sprintf("u%02d", i), mailbox: true})
	}
	return append(us,
		dirUser{id: "u07-nomail"},
		dirUser{id: "u08-policy", mailbox: true, policy: true},
		dirUser{id: "u09-shared", mailbox: true, shared: true, disabled: true},
		dirUser{id: "u10-disabled", mailbox: true, disabled: true})
}

// TestApplicationDiscoveryAcrossContinueAsNew discovers a tenant's
// mailboxes page by page, continues as new in the middle of the first
// round (its state in the directory, not the workflow), and in the next
// generation starts every mailbox once, lists the others as excluded with
// their reasons, then follows joins and leaves in later rounds.
func TestApplicationDiscoveryAcrossContinueAsNew(t *testing.T) {
	d := newFakeDirectory(tenantUsers()...)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	newFakes().register(env)
	d.register(env, nil)
	in := appInput(time.Time{})
	in.Options.ContinueAsNewAfter = 100
	// The history has grown once the first mailboxes were started (their
	// mailboxes backfilled ahead, app-prefill), three at a time: some
	// are, not all.
	d.changesAtOnce = 3
	d.onStart = func() { env.SetCurrentHistoryLength(101) }
	env.ExecuteWorkflow(Connection, in)
	next := carriedInput(t, env.GetWorkflowError())
	if next.State == nil || next.State.App == nil || next.State.State != StateActive {
		t.Fatalf("carried state: %+v", next.State)
	}
	if len(next.State.Mailboxes) != 0 {
		t.Errorf("the workflow holds %d mailboxes; the directory is the registry's", len(next.State.Mailboxes))
	}
	firstGen := len(d.started)
	if firstGen == 0 || firstGen >= 7 {
		t.Errorf("%d mailboxes started before continue-as-new; want some, not all", firstGen)
	}

	env = s.NewTestWorkflowEnvironment()
	f := newFakes()
	f.register(env)
	d.onStart, d.changesAtOnce = nil, 0
	d.register(env, nil)
	next.Options.ContinueAsNewAfter = 100000
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		c := d.statuses()
		if c["syncing"] != 7 || c["excluded:no_mailbox"] != 1 || c["excluded:access_policy"] != 1 ||
			c["excluded:shared_not_selected"] != 1 || c["excluded:account_disabled"] != 1 {
			t.Errorf("after the first round: %v", c)
		}
		if st.App.Discovery.Rounds != 1 || st.App.Discovery.More {
			t.Errorf("discovery after the first round: %+v", st.App.Discovery)
		}
		d.join(dirUser{id: "u11-new", mailbox: true})
		d.join(dirUser{id: "u12-new", mailbox: true})
		d.leave("u03")
	}, 5*time.Minute)
	endWith(env, 40*time.Minute, func() {
		c := d.statuses()
		if c["syncing"] != 8 || c["left"] != 1 {
			t.Errorf("after joins and a leave: %v", c)
		}
		st := query(t, env)
		if st.App.Discovery.Rounds < 2 || st.App.Discovery.Left != 1 {
			t.Errorf("discovery: %+v", st.App.Discovery)
		}
	})
	env.ExecuteWorkflow(Connection, next)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, id := range d.started {
		seen[id]++
	}
	if len(d.started) != 9 || len(seen) != 9 {
		t.Errorf("mailboxes started %v; want 9, each once", d.started)
	}
}

// TestApplicationSecretExpiry tells the app ahead of the secret's expiry
// (at 30 and 7 days, once each), then, the secret expired and refused,
// waits in reauth_required; a new credential resumes it and tells every
// mailbox.
func TestApplicationSecretExpiry(t *testing.T) {
	d := newFakeDirectory(dirUser{id: "u00", mailbox: true}, dirUser{id: "u01", mailbox: true})
	d.block = true
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := newFakes()
	f.register(env)
	d.register(env, nil)
	start := env.Now()
	expires := start.Add(40 * 24 * time.Hour)
	expiring := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		n := 0
		for _, e := range f.events {
			if e == "connection.credential_expiring" {
				n++
			}
		}
		return n
	}
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.Reason != "" || expiring() != 0 {
			t.Errorf("11 days before expiry: %q, %d warnings", st.Reason, expiring())
		}
	}, 9*24*time.Hour)
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateActive || st.Reason != ReasonCredentialExpiring || expiring() != 1 {
			t.Errorf("29 days before expiry: %s %q, %d warnings", st.State, st.Reason, expiring())
		}
	}, 11*24*time.Hour)
	env.RegisterDelayedCallback(func() {
		if n := expiring(); n != 2 {
			t.Errorf("6 days before expiry: %d warnings", n)
		}
		// From now on Microsoft refuses the secret.
		f.refresh = func() (RefreshResult, error) {
			return RefreshResult{}, temporal.NewNonRetryableApplicationError("refused", ErrReauthRequired, nil,
				struct{ Reason, Text string }{"client_secret_expired", "The client secret has expired."})
		}
	}, 34*24*time.Hour)
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		if st.State != StateReauthRequired || st.Reason != "client_secret_expired" {
			t.Errorf("after the expiry: %s %q", st.State, st.Reason)
		}
		d.mu.Lock()
		paused := slices.Clone(d.signalled)
		d.mu.Unlock()
		slices.Sort(paused)
		if want := []string{"pause:mbx_00000001:client_secret_expired", "pause:mbx_00000002:client_secret_expired"}; !slices.Equal(paused, want) {
			t.Errorf("mailboxes told to pause: %v, want %v", paused, want)
		}
		newExpiry := expires.Add(365 * 24 * time.Hour)
		update(t, env, UpdateCredential, CredentialInput{SecretExpires: newExpiry}, func(st Status, err error) {
			if err != nil || st.State != StateActive || st.Reason != "" || !st.App.SecretExpires.Equal(newExpiry) {
				t.Errorf("rotation: %s %q %v", st.State, st.Reason, err)
			}
		})
	}, 40*24*time.Hour+time.Hour)
	endWith(env, 40*24*time.Hour+2*time.Hour, func() {
		d.mu.Lock()
		resumed := slices.DeleteFunc(slices.Clone(d.signalled), func(s string) bool { return strings.HasPrefix(s, "pause:") })
		d.mu.Unlock()
		slices.Sort(resumed)
		if len(resumed) != 2 || resumed[0] != "mbx_00000001" {
			t.Errorf("mailboxes told to resume: %v", resumed)
		}
		if n := expiring(); n != 2 {
			t.Errorf("%d warnings in all", n)
		}
	})
	defer func() {
		if !d.closed {
			t.Error("the disconnect did not close the directory")
		}
	}()
	env.ExecuteWorkflow(Connection, appInput(expires))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

// TestApplicationShortExpiryMargins: margins shorter than an hour (as a
// test world configures them) are each told once, apart, with the time
// left in the sentence.
func TestApplicationShortExpiryMargins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		margins []time.Duration
		want    int
	}{
		{"seconds", []time.Duration{30 * time.Second, 15 * time.Second}, 2},
		{"hours and minutes", []time.Duration{2 * time.Hour, 90 * time.Minute, 10 * time.Minute}, 3},
		{"one", []time.Duration{time.Minute}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newFakeDirectory(dirUser{id: "u00", mailbox: true})
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			f := newFakes()
			f.register(env)
			d.register(env, nil)
			expires := env.Now().Add(3 * time.Hour)
			in := appInput(expires)
			in.Options.ExpiryMargins = tc.margins
			env.RegisterDelayedCallback(func() {
				st := query(t, env)
				if st.Reason != ReasonCredentialExpiring || !strings.Contains(st.ReasonText, "expires on") {
					t.Errorf("just before the expiry: %q %q", st.Reason, st.ReasonText)
				}
				if len(st.App.WarnedSeconds) != tc.want {
					t.Errorf("margins told: %v, want %d", st.App.WarnedSeconds, tc.want)
				}
			}, 3*time.Hour-time.Second)
			endWith(env, 3*time.Hour, func() {
				f.mu.Lock()
				defer f.mu.Unlock()
				n := 0
				for _, e := range f.events {
					if e == "connection.credential_expiring" {
						n++
					}
				}
				if n != tc.want {
					t.Errorf("%d connection.credential_expiring events, want %d", n, tc.want)
				}
			})
			env.ExecuteWorkflow(Connection, in)
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMarginID(t *testing.T) {
	for _, tc := range []struct {
		m    time.Duration
		want string
	}{{720 * time.Hour, "720"}, {168 * time.Hour, "168"}, {30 * time.Second, "30s"}, {90 * time.Minute, "5400s"}} {
		if got := marginID(tc.m); got != tc.want {
			t.Errorf("marginID(%s) = %q, want %q", tc.m, got, tc.want)
		}
	}
}

// TestApplicationGroupSelection: a selection by group syncs the groups'
// members only; each discovery round reads the members again first, so a
// member added (even to a nested group) joins and one removed leaves, with
// no change of the user itself for /users/delta to report. A group that
// cannot be read stops the round before any page.
func TestApplicationGroupSelection(t *testing.T) {
	const group = "0b7d5c8e-1f5a-4c2e-9d3b-6a1e2f3c4d5e"
	d := newFakeDirectory(dirUser{id: "u00", mailbox: true}, dirUser{id: "u01", mailbox: true}, dirUser{id: "u02", mailbox: true},
		dirUser{id: "u03", mailbox: true})
	d.groups = map[string][]string{group: {"u00", "u01"}}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := newFakes()
	f.register(env)
	d.register(env, nil)
	in := appInput(time.Time{})
	in.Application.Selection = Selection{Groups: []string{group}}
	env.RegisterDelayedCallback(func() {
		c := d.statuses()
		if c["syncing"] != 2 || c["excluded:not_selected"] != 2 || d.rows["u00"].status != "syncing" || d.rows["u01"].status != "syncing" {
			t.Errorf("after the first round: %v", c)
		}
		d.mu.Lock()
		d.groups[group] = []string{"u00", "u03"} // u01 out, u03 in (say, through a nested group)
		d.mu.Unlock()
	}, 5*time.Minute)
	env.RegisterDelayedCallback(func() {
		if d.rows["u01"].status != "left" || d.rows["u03"].status != "syncing" || d.rows["u02"].reason != "not_selected" {
			t.Errorf("after the membership changed: u01 %+v, u03 %+v, u02 %+v", *d.rows["u01"], *d.rows["u03"], *d.rows["u02"])
		}
		d.mu.Lock()
		d.groupsErr = temporal.NewNonRetryableApplicationError("refused", "GroupsUnreadable", nil,
			struct{ Reason, Text string }{"permission_missing", "grant GroupMember.Read.All"})
		pages := d.pages
		d.mu.Unlock()
		update(t, env, UpdateDiscover, nil, func(st Status, err error) {
			if err != nil {
				t.Errorf("discover: %v", err)
			}
		})
		env.RegisterDelayedCallback(func() {
			st := query(t, env)
			if st.App.Discovery.LastError != "permission_missing: grant GroupMember.Read.All" || d.pages != pages {
				t.Errorf("a group unreadable: last error %q, %d pages read after it", st.App.Discovery.LastError, d.pages-pages)
			}
		}, 30*time.Second)
	}, 25*time.Minute)
	endWith(env, 40*time.Minute, func() {
		if d.groupReads < 3 {
			t.Errorf("groups read %d times, want one per round", d.groupReads)
		}
	})
	env.ExecuteWorkflow(Connection, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

func TestSelectionGroups(t *testing.T) {
	for _, tc := range []struct {
		name string
		sel  Selection
		ok   bool
	}{
		{"a group", Selection{Groups: []string{"0b7d5c8e-1f5a-4c2e-9d3b-6a1e2f3c4d5e"}}, true},
		{"a name, not an ID", Selection{Groups: []string{"Sales"}}, false},
		{"too many", Selection{Groups: slices.Repeat([]string{"0b7d5c8e-1f5a-4c2e-9d3b-6a1e2f3c4d5e"}, 51)}, false},
	} {
		if err := tc.sel.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestApplicationPrefillsAheadOfStarts: a tenant's joining mailboxes are
// backfilled ahead of their workflows, in batches, and each workflow is
// started only after its mailbox was, handed the backfill when it was done
// whole (one left unfinished is started to finish it itself); the round
// ends once every join was started, and a leave waits for the batch under
// way before its mailbox is detached.
func TestApplicationPrefillsAheadOfStarts(t *testing.T) {
	users := []dirUser{{id: "u07-nomail"}}
	for i := range 7 {
		users = append(users, dirUser{id: fmt.Sprintf("u%02d", i), mailbox: true})
	}
	d := newFakeDirectory(users...)
	d.undone = map[string]bool{"u02": true}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	newFakes().register(env)
	d.register(env, nil)
	in := appInput(time.Time{})
	in.Settings.BackfillDays = 90
	var leaveSeen, prefillRunning bool
	// Each batch takes a while: the mailboxes it made ready wait for it.
	d.onPrefill = func(ctx context.Context, n int) error {
		time.Sleep(30 * time.Millisecond)
		return nil
	}
	env.RegisterDelayedCallback(func() {
		st := query(t, env)
		p, disc := st.App.Prefill, st.App.Discovery
		if p.Mailboxes != 7 || p.Done != 6 || p.Messages != 18 || p.Running || p.More || disc.Rounds != 1 || disc.Held || disc.Joined != 7 || !disc.StartsWaitSince.IsZero() {
			t.Errorf("after the first round: prefill %+v, discovery %+v", p, disc)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if c := len(d.started); c != 7 {
			t.Errorf("%d mailboxes started, want 7", c)
		}
		if d.startsInBatch != 0 {
			t.Errorf("%d starts while a batch ran", d.startsInBatch)
		}
		for id, r := range d.rows {
			if r.status != "syncing" {
				continue
			}
			pre := slices.Index(d.order, "prefill:"+r.mailboxID)
			start := slices.Index(d.order, "start:"+r.mailboxID)
			if pre < 0 || start < pre {
				t.Errorf("%s started at %d, backfilled ahead at %d", id, start, pre)
			}
			if got := d.inputs[r.mailboxID].Backfilled; (got == nil) != (id == "u02") {
				t.Errorf("%s started with backfill %+v", id, got)
			}
		}
		// A newcomer joins and u03 leaves: the leave is applied only once
		// the newcomer's batch has ended.
		d.users["u11-new"] = dirUser{id: "u11-new", mailbox: true}
		delete(d.users, "u03")
		d.changed = append(d.changed, "u11-new", "u03")
		d.onPrefill = func(ctx context.Context, n int) error {
			d.mu.Lock()
			prefillRunning = true
			d.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			d.mu.Lock()
			prefillRunning = false
			d.mu.Unlock()
			return nil
		}
	}, 10*time.Minute)
	d.onCancel = func(wid string) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if prefillRunning {
			t.Errorf("%s detached while a batch ran", wid)
		}
		leaveSeen = true
	}
	endWith(env, 40*time.Minute, func() {
		c := d.statuses()
		if c["syncing"] != 7 || c["left"] != 1 || !leaveSeen {
			t.Errorf("after a join and a leave: %v", c)
		}
	})
	env.ExecuteWorkflow(Connection, in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

// TestApplicationDisconnectDuringPrefill: a disconnect while a batch of
// mailboxes is being backfilled ahead cancels it, none of the batch's
// mailboxes is started, and the directory is closed.
func TestApplicationDisconnectDuringPrefill(t *testing.T) {
	d := newFakeDirectory(dirUser{id: "u00", mailbox: true}, dirUser{id: "u01", mailbox: true})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	f := newFakes()
	f.register(env)
	d.register(env, nil)
	ended := make(chan struct{})
	d.onPrefill = func(ctx context.Context, n int) error {
		// The app disconnects while the batch runs (the test environment's
		// clock stands still while an activity runs).
		env.CancelWorkflow()
		for ctx.Err() == nil { // until cancelled
			activity.RecordHeartbeat(ctx)
			time.Sleep(10 * time.Millisecond)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		d.order = append(d.order, "prefill:cancelled")
		close(ended)
		return ctx.Err()
	}
	env.ExecuteWorkflow(Connection, appInput(time.Time{}))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	<-ended
	d.mu.Lock()
	defer d.mu.Unlock()
	// The test environment reports a cancelled activity ended at once; a
	// server waits for it to end (WaitForCancellation), so the order of
	// the two is the server's to show.
	if !slices.Contains(d.order, "prefill:cancelled") || !d.closed || len(d.started) != 0 {
		t.Errorf("disconnected during a batch: order %v, started %v, closed %v", d.order, d.started, d.closed)
	}
}

// TestApplicationDisconnectWhileStartsWait: a disconnect while the
// mailboxes a batch backfilled wait for the next batch to end cancels that
// batch; the waiting mailboxes, never started, are detached without a
// cancel of a workflow they do not have, the running ones are cancelled,
// and the directory is closed.
func TestApplicationDisconnectWhileStartsWait(t *testing.T) {
	var users []dirUser
	for i := range 5 {
		users = append(users, dirUser{id: fmt.Sprintf("u%02d", i), mailbox: true})
	}
	d := newFakeDirectory(users...)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	newFakes().register(env)
	d.register(env, nil)
	var cancelled []string
	d.onCancel = func(wid string) { cancelled = append(cancelled, wid) }
	d.onPrefill = func(ctx context.Context, n int) error {
		if n < 3 {
			time.Sleep(30 * time.Millisecond)
			return nil
		}
		// The third batch: the two before it wait for it to be started.
		env.CancelWorkflow()
		for ctx.Err() == nil {
			activity.RecordHeartbeat(ctx)
			time.Sleep(10 * time.Millisecond)
		}
		return ctx.Err()
	}
	env.ExecuteWorkflow(Connection, appInput(time.Time{}))
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ended := 0
	for _, r := range d.rows {
		if r.attached() {
			t.Errorf("%s still attached (%s)", r.mailboxID, r.status)
		}
		if r.endedHere {
			ended++
		}
	}
	if ended != 4-len(d.started) || len(cancelled) != len(d.started) || !d.closed {
		t.Errorf("%d detached unstarted, %d started, cancelled %v, directory closed %v", ended, len(d.started), cancelled, d.closed)
	}
	if len(d.started) != 0 {
		t.Errorf("started %v while the batch after theirs ran", d.started)
	}
}

// TestStartsWaitAtMost: the mailboxes a batch made ready wait for it for
// startsWaitAtMost at most; then they go, the batch running beside them,
// until none is left to start, and the next wait begins.
func TestStartsWaitAtMost(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	type step struct {
		after time.Duration // workflow time slept before the step
		batch bool          // a batch runs
		ready bool          // mailboxes are left to start (else none: the wait ends)
		want  bool
	}
	steps := []step{
		{0, false, true, false},                        // no batch: they go
		{0, true, true, true},                          // a batch: they wait
		{time.Minute, true, true, true},                // still within the bound
		{time.Minute + time.Second, true, true, false}, // past it: they go, the batch beside them
		{10 * time.Second, true, true, false},          // and go on going while any is ready
		{10 * time.Second, true, false, false},         // none left: nothing to start, the wait is over
		{10 * time.Second, true, true, true},           // the next ones wait again
	}
	env.ExecuteWorkflow(func(ctx workflow.Context) ([]bool, error) {
		c := &connection{s: ConnectionState{App: &AppState{}}}
		var got []bool
		for _, st := range steps {
			if st.after > 0 {
				if err := workflow.Sleep(ctx, st.after); err != nil {
					return nil, err
				}
			}
			c.prefillBatch = st.batch
			w := c.startsWait(ctx)
			if !w && !st.ready {
				c.s.App.Discovery.StartsWaitSince = time.Time{} // as discoverAhead does when no change is left
			}
			got = append(got, w)
		}
		return got, nil
	})
	var got []bool
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		if got[i] != st.want {
			t.Errorf("step %d (%+v): waits %v", i, st, got[i])
		}
	}
}
