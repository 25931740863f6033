package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// An application connection (kind application) syncs the mailboxes of a
// whole tenant with the app's own credential (client credentials, after an
// administrator's consent to application permissions): no one signs in.
// Its workflow owns the credential (tokens, the secret's expiry, its
// rotation) and the discovery of mailboxes with /users/delta; each
// mailbox discovered runs the same Mailbox workflow a service account's
// attached mailboxes run. The directory (who is synced, who is excluded
// and why) is kept in Postgres, never in the workflow: its history stays
// bounded whatever the size of the organisation (docs/application.md).

// Selection is which of the tenant's mailboxes an application connection
// syncs.
type Selection struct {
	// Include and Groups, when either is set, say the only users synced:
	// those Include lists (addresses or user IDs) and the members, direct
	// or through nested groups, of the groups Groups lists (group IDs).
	// Otherwise every user with a mailbox is.
	Include []string `json:"include,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	// Exclude lists users never synced (addresses or user IDs).
	Exclude []string `json:"exclude,omitempty"`
	// Shared includes shared mailboxes (whose accounts cannot sign in).
	Shared bool `json:"shared,omitempty"`
}

// Validate refuses a selection the engine cannot apply.
func (s Selection) Validate() error {
	if len(s.Include) > 10000 || len(s.Exclude) > 10000 {
		return errors.New("a selection lists at most 10000 users")
	}
	for _, u := range append(slices.Clone(s.Include), s.Exclude...) {
		if u == "" || len(u) > 320 {
			return fmt.Errorf("%q is not a user: give an address or a user ID", u)
		}
	}
	if len(s.Groups) > 50 {
		return errors.New("a selection names at most 50 groups")
	}
	for _, g := range s.Groups {
		if !groupID.MatchString(g) {
			return fmt.Errorf("%q is not a group ID: give the group's object ID (a GUID, on its Overview page in Entra)", g)
		}
	}
	return nil
}

// groupID is a directory object ID.
var groupID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ApplicationInit is what the API learnt when it checked the credential:
// an application connection starts active.
type ApplicationInit struct {
	TenantID  string    `json:"tenantId"`
	ClientID  string    `json:"clientId"`
	Roles     []string  `json:"roles"`
	Selection Selection `json:"selection"`
	// SecretExpires is when the client secret expires (zero: not said).
	SecretExpires time.Time `json:"secretExpires,omitempty"`
}

// AppState is the application connection's own part of its state.
type AppState struct {
	ClientID      string    `json:"clientId"`
	Selection     Selection `json:"selection"`
	SecretExpires time.Time `json:"secretExpires,omitempty"`
	// Warned lists the margins (in hours before expiry) told for the
	// current secret before margins were kept in seconds; WarnedSeconds
	// lists them in seconds (margins shorter than an hour, or not whole
	// hours, are possible).
	Warned        []int   `json:"warned,omitempty"`
	WarnedSeconds []int64 `json:"warnedSeconds,omitempty"`
	// Discovery is where the discovery of mailboxes stands.
	Discovery DiscoveryState `json:"discovery"`
	// Resume: after a new credential, the paused mailboxes are told to
	// resume, in batches after ResumeAfter.
	Resume      bool   `json:"resume,omitempty"`
	ResumeAfter string `json:"resumeAfter,omitempty"`
	// Pause: the credential was refused; the mailboxes are told to pause
	// at their cursors, in batches after PauseAfter, so that none keeps
	// asking the token endpoint with a dead credential.
	Pause      bool   `json:"pause,omitempty"`
	PauseAfter string `json:"pauseAfter,omitempty"`
	// Rotations counts the credentials given since the first.
	Rotations int `json:"rotations,omitempty"`
	// Prefill is where the backfill of joining mailboxes ahead of their
	// workflows stands (app-prefill).
	Prefill PrefillState `json:"prefill"`
}

// DiscoveryState is where the discovery of mailboxes stands.
type DiscoveryState struct {
	// More: a round (or changes to apply) is under way; the next batch is
	// due at once.
	More      bool      `json:"more,omitempty"`
	Rounds    int       `json:"rounds"`
	LastRound time.Time `json:"lastRound,omitempty"`
	// RoundEnded: the round's last page was read; it ends once its
	// changes are applied.
	RoundEnded bool `json:"roundEnded,omitempty"`
	// Requested: a round was asked for while one ran; it follows at once.
	Requested bool `json:"requested,omitempty"`
	// GroupsRead: the selected groups' members were read for this round.
	GroupsRead bool `json:"groupsRead,omitempty"`
	// Held: the round's pages are read, and what is left are joins whose
	// mailboxes are being backfilled ahead of their workflows, or a batch
	// being started; discovery is due again when either ends, or
	// heldRecheck after HeldSince while a backfill batch runs, to start
	// the mailboxes it has done meanwhile (app-prefill).
	Held      bool      `json:"held,omitempty"`
	HeldSince time.Time `json:"heldSince,omitzero"`
	// StartsWaitSince is when mailboxes backfilled ahead began waiting for
	// the backfill batch under way to end before their workflows are
	// started (app-starts-after-prefill); zero when none wait.
	StartsWaitSince time.Time `json:"startsWaitSince,omitzero"`
	Joined          int64     `json:"joined"`
	Left            int64     `json:"left"`
	LastError       string    `json:"lastError,omitempty"`
	Backoff         Backoff   `json:"backoff"`
}

// Names of the application connection's handlers.
const (
	// UpdateCredential tells the workflow a new credential was checked and
	// stored in Vault (the secret itself never comes here).
	UpdateCredential = "rotate_credential"
	// UpdateDiscover asks for a discovery round now.
	UpdateDiscover = "discover"
)

// CredentialInput describes a credential the API checked and stored.
type CredentialInput struct {
	SecretExpires time.Time `json:"secretExpires,omitempty"`
	Roles         []string  `json:"roles,omitempty"`
}

// Reasons of an application connection.
const (
	// ReasonCredentialExpiring: the client secret expires soon.
	ReasonCredentialExpiring = "credential_expiring"
)

// MailboxWorkflowName is the registered name of Mailbox.
const MailboxWorkflowName = "Mailbox"

// Defaults of an application connection.
const (
	defaultDiscoverEvery = 15 * time.Minute
	// discoveryBatch bounds the mailboxes paused or resumed at once.
	discoveryBatch = 50
	// changesBatch bounds the directory's changes applied at once
	// (mailboxes started or detached): each batch costs the connection
	// three activities and their workflow tasks, which wait in the task
	// queue behind the mailboxes' own, so a tenant's onboarding is paced
	// by the number of batches.
	changesBatch = 200
)

// defaultMailboxSettingsEvery is how often a mailbox's mailboxSettings
// are read again.
const defaultMailboxSettingsEvery = 6 * time.Hour

// expiryCheckSlack is how long after a secret's expiry the credential is
// checked.
const expiryCheckSlack = 10 * time.Second

// DefaultExpiryMargins are when the app is told a client secret expires.
var DefaultExpiryMargins = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour}

// DiscoverPageInput asks for one page of /users/delta.
type DiscoverPageInput struct {
	ConnectionID string    `json:"connectionId"`
	Selection    Selection `json:"selection"`
	// Pages reads up to that many pages, one after the other, each
	// written with its link (0 or 1: one page), until the round ends.
	Pages int `json:"pages,omitempty"`
}

// DiscoverPageResult says what the pages read found.
type DiscoverPageResult struct {
	Users int `json:"users"`
	// RoundDone: the last page ended the round (a deltaLink).
	RoundDone bool `json:"roundDone"`
	// Restarted: the delta link had expired; the round starts over.
	Restarted bool `json:"restarted,omitempty"`
}

// DiscoverGroupsInput asks for the selected groups' members to be read
// again and compared with the last read.
type DiscoverGroupsInput struct {
	ConnectionID string    `json:"connectionId"`
	Selection    Selection `json:"selection"`
}

// DiscoverGroupsResult says what the read found.
type DiscoverGroupsResult struct {
	Members int `json:"members"`
	// Joined and Left count the users whose membership changed and who
	// the directory already knew (the others come with /users/delta).
	Joined int `json:"joined"`
	Left   int `json:"left"`
}

// MailboxChangesInput asks for changes of the directory to apply.
type MailboxChangesInput struct {
	ConnectionID string `json:"connectionId"`
	Limit        int    `json:"limit"`
	// Prefilled lists a join only once its mailbox was backfilled ahead of
	// its workflow (app-prefill), and counts the others as held.
	Prefilled bool `json:"prefilled,omitempty"`
}

// MailboxChange is a mailbox to start (Join) or detach.
type MailboxChange struct {
	UserID      string `json:"userId"`
	MailboxID   string `json:"mailboxId"`
	Address     string `json:"address"`
	DisplayName string `json:"displayName,omitempty"`
	Join        bool   `json:"join"`
	Reason      string `json:"reason,omitempty"`
	// Backfilled is the joining mailbox's backfill, done ahead of its
	// workflow (nil: the workflow backfills it).
	Backfilled *Prefilled `json:"backfilled,omitempty"`
}

// MailboxChangesResult lists changes to apply.
type MailboxChangesResult struct {
	Changes []MailboxChange `json:"changes"`
	// Held counts the joins whose mailboxes are still to be backfilled
	// ahead of their workflows (with Prefilled).
	Held int `json:"held,omitempty"`
}

// AckMailboxChangesInput records changes applied.
type AckMailboxChangesInput struct {
	ConnectionID string          `json:"connectionId"`
	Changes      []MailboxChange `json:"changes"`
}

// StartMailboxesInput asks for mailboxes' workflows to be started on a
// task queue. A mailbox whose workflow runs already keeps it: starting is
// idempotent by workflow ID, so a retried activity starts none twice.
type StartMailboxesInput struct {
	TaskQueue string         `json:"taskQueue"`
	Mailboxes []MailboxStart `json:"mailboxes"`
}

// MailboxStart is one mailbox's workflow to start: its input, and the
// summary and details the Temporal UI shows of it.
type MailboxStart struct {
	Input   MailboxInput `json:"input"`
	Summary string       `json:"summary"`
	Details string       `json:"details"`
}

// LiveMailboxesInput pages a connection's live mailboxes.
type LiveMailboxesInput struct {
	ConnectionID string `json:"connectionId"`
	After        string `json:"after,omitempty"`
	Limit        int    `json:"limit"`
}

// LiveMailboxesResult is a page of mailbox IDs.
type LiveMailboxesResult struct {
	IDs []string `json:"ids"`
}

// EndMailboxesInput asks for a page of a disconnecting connection's
// mailboxes, after After, to be ended with the retention: each running
// workflow is asked to cancel (it detaches its mailbox itself), and a
// mailbox with none (backfilled ahead and not started yet, or its workflow
// ended) is detached by the activity.
type EndMailboxesInput struct {
	ConnectionID string `json:"connectionId"`
	After        string `json:"after,omitempty"`
	Limit        int    `json:"limit"`
	Retention    string `json:"retention"`
}

// EndMailboxesResult says which mailboxes the page held and which of them
// the activity detached.
type EndMailboxesResult struct {
	IDs      []string `json:"ids"`
	Detached []string `json:"detached,omitempty"`
}

// DetachedRecord is how a mailbox whose workflow ended (or never ran) is
// recorded detached with the retention.
func DetachedRecord(connectionID, mailboxID, retention string) RecordStateInput {
	return RecordStateInput{ConnectionID: connectionID, MailboxID: mailboxID, State: StateDisconnected, Reason: ReasonWorkflowEnded,
		Events: []EventRecord{{ID: mailboxID + ":detached", Type: "mailbox.detached", Data: map[string]any{"mailbox_id": mailboxID, "retention": retention, "cause": ReasonWorkflowEnded}}}}
}

// Activity names of an application connection.
const (
	ActivityDiscoverPage      = "DiscoverPage"
	ActivityDiscoverGroups    = "DiscoverGroups"
	ActivityMailboxChanges    = "MailboxChanges"
	ActivityAckMailboxChanges = "AckMailboxChanges"
	ActivityLiveMailboxes     = "LiveMailboxes"
	ActivityCloseDirectory    = "CloseDirectory"
	ActivityStartMailboxes    = "StartMailboxes"
	ActivityEndMailboxes      = "EndMailboxes"
)

var (
	discoverPage      = call[DiscoverPageInput, DiscoverPageResult]{ActivityDiscoverPage, graphCall(5 * time.Minute)}
	discoverGroups    = call[DiscoverGroupsInput, DiscoverGroupsResult]{ActivityDiscoverGroups, graphCall(10 * time.Minute)}
	mailboxChanges    = call[MailboxChangesInput, MailboxChangesResult]{ActivityMailboxChanges, bookkeeping}
	ackMailboxChanges = call[AckMailboxChangesInput, None]{ActivityAckMailboxChanges, bookkeeping}
	liveMailboxes     = call[LiveMailboxesInput, LiveMailboxesResult]{ActivityLiveMailboxes, bookkeeping}
	closeDirectory    = call[ConnectionRef, None]{ActivityCloseDirectory, sagaStep}
	// startMailboxes starts up to changesBatch workflows through the
	// Temporal client, in parallel.
	startMailboxes = call[StartMailboxesInput, None]{ActivityStartMailboxes, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	}}
	// endMailboxes ends up to endBatch mailboxes through the Temporal
	// client, in parallel.
	endMailboxes = call[EndMailboxesInput, EndMailboxesResult]{ActivityEndMailboxes, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	}}
)

// endBatch is how many mailboxes one EndMailboxes ends.
const endBatch = 200

func applicationActivities() []ActivitySpec {
	return []ActivitySpec{discoverPage.spec(), discoverGroups.spec(), mailboxChanges.spec(), ackMailboxChanges.spec(), liveMailboxes.spec(), closeDirectory.spec(),
		startMailboxes.spec(), prefillMailboxes.spec(), endMailboxes.spec()}
}

// isApplication says whether this is an application connection's
// workflow (not one of its mailboxes').
func (c *connection) isApplication() bool { return !c.isMailbox() && c.s.Mode == ModeApplication }

// startApplication fills the state of a new application connection: it is
// active from the start (the API proved the credential).
func (c *connection) startApplication(ctx workflow.Context, in ApplicationInit) {
	c.s.State, c.s.TenantID, c.s.GrantedScopes = StateActive, in.TenantID, in.Roles
	c.s.Granted = Features{Read: true}
	c.s.LastRefresh = workflow.Now(ctx)
	c.s.App = &AppState{ClientID: in.ClientID, Selection: in.Selection, SecretExpires: in.SecretExpires,
		Discovery: DiscoveryState{More: true}}
	c.s.Registry.State = StateActive
	c.s.Transitions++
	c.s.Registry.Events = append(c.s.Registry.Events, EventRecord{ID: c.s.ID + ":active:0", Type: "connection.active",
		Data: map[string]any{"kind": ModeApplication, "tenant_id": in.TenantID}})
}

func (c *connection) discoverEvery() time.Duration {
	if c.opts.DiscoverEvery > 0 {
		return c.opts.DiscoverEvery
	}
	return defaultDiscoverEvery
}

func (c *connection) discoverDue(ctx workflow.Context) (time.Time, bool) {
	if !c.isApplication() {
		return time.Time{}, false
	}
	d := c.s.App.Discovery
	if d.Held && c.applying {
		return time.Time{}, false // until the batch being started is
	}
	if until := d.StartsWaitSince.Add(startsWaitAtMost); d.Held && !d.StartsWaitSince.IsZero() && c.prefillBatch && workflow.Now(ctx).Before(until) {
		// The starts wait for the batch, which wakes discovery at its
		// end, or for as long as they may.
		return until, true
	}
	if d.Held {
		// The backfill ahead wakes it at each batch's end; between, or
		// when it waits (a backoff), discovery looks for mailboxes done.
		return d.HeldSince.Add(heldRecheck), true
	}
	at := d.LastRound.Add(c.discoverEvery())
	if d.More {
		at = time.Time{}
	}
	return d.Backoff.later(at), true
}

// discover runs one batch of discovery: the changes the directory holds
// that are not applied yet (mailboxes to start or detach), or else the
// next page of /users/delta. The loop comes back at once while there is
// more, and may continue as new between batches; a round ends when its
// last page was read and every change it made was applied.
func (c *connection) discover(ctx workflow.Context) {
	if c.prefills(ctx) {
		c.discoverAhead(ctx)
		return
	}
	d := &c.s.App.Discovery
	res, err := mailboxChanges.run(ctx, MailboxChangesInput{ConnectionID: c.s.ID, Limit: changesBatch})
	if err == nil && len(res.Changes) > 0 {
		err = c.applyMailboxChanges(ctx, res.Changes)
		if err == nil {
			d.More, d.LastError, d.Backoff = true, "", Backoff{}
			return
		}
	}
	if err == nil && d.RoundEnded {
		c.endRound(ctx)
		return
	}
	c.nextPage(ctx, 0, err)
}

// discoverAhead is discovery when joining mailboxes are backfilled ahead
// of their workflows (app-prefill): three paces kept apart. The pages of
// /users/delta are read at Graph's pace, the mailboxes they bring are
// backfilled by the prefill batches at Graph's pace, and the mailboxes
// ready are started, a batch at a time, in a goroutine, at Temporal's pace,
// while the next pages are read. A round ends once its pages are read and
// every change it made was applied.
func (c *connection) discoverAhead(ctx workflow.Context) {
	d := &c.s.App.Discovery
	d.Held = false
	held := 0
	// No batch begins once the history asks for a new run: the run ends
	// when the batches under way have, and the next goes on.
	skipped := c.applying || c.canSuggested(ctx)
	waiting := !skipped && c.startsWait(ctx)
	if !skipped && !waiting {
		res, err := mailboxChanges.run(ctx, MailboxChangesInput{ConnectionID: c.s.ID, Limit: changesBatch, Prefilled: true})
		if err != nil {
			c.discoveryFailed(ctx, err)
			return
		}
		if len(res.Changes) == 0 {
			d.StartsWaitSince = time.Time{} // every mailbox ready is started
		}
		held = res.Held
		if held > 0 && !c.s.App.Prefill.Running {
			c.s.App.Prefill.More = true
		}
		if len(res.Changes) > 0 {
			c.applying = true
			workflow.Go(ctx, func(gctx workflow.Context) {
				err := c.applyMailboxChanges(gctx, res.Changes)
				c.applying = false
				if err != nil {
					c.discoveryFailed(gctx, err)
					d.Held, d.More = false, true
					return
				}
				d.LastError, d.Backoff = "", Backoff{}
				c.wakeDiscovery()
			})
		}
	}
	if !d.RoundEnded {
		c.nextPage(ctx, discoverPages, nil)
		return
	}
	if skipped || waiting || c.applying || held > 0 {
		// The round's pages are read: the batch being started (maybe
		// just now), or the joins being backfilled, bring discovery back.
		d.Held, d.HeldSince, d.More = true, workflow.Now(ctx), false
		return
	}
	c.endRound(ctx)
}

// startsWait says whether the mailboxes a backfill batch has made ready
// wait for it to end before their workflows are started
// (app-starts-after-prefill): a tenant's onboarding is first its mail,
// then live sync. The workflows' starts and first rounds take the same
// cores as the backfill, which went about a third slower beside them
// (docs/application.md#onboarding). They wait startsWaitAtMost at most:
// then every mailbox ready is started, the batch going on beside them,
// and the next wait begins once none is left to start.
func (c *connection) startsWait(ctx workflow.Context) bool {
	d := &c.s.App.Discovery
	if !c.prefillBatch || workflow.GetVersion(ctx, "app-starts-after-prefill", workflow.DefaultVersion, 1) != 1 {
		return false
	}
	now := workflow.Now(ctx)
	if d.StartsWaitSince.IsZero() {
		d.StartsWaitSince = now
	}
	return now.Sub(d.StartsWaitSince) < startsWaitAtMost
}

// startsWaitAtMost bounds how long a mailbox backfilled ahead waits for
// the batch under way to end before its workflow is started.
const startsWaitAtMost = 2 * time.Minute

// heldRecheck is how often a discovery waiting for the backfill ahead
// looks for mailboxes it has done, to start them (or, the backfill
// waiting, for joins left to it).
const heldRecheck = 5 * time.Second

// discoverPages is how many pages of /users/delta one DiscoverPage reads
// when mailboxes are backfilled ahead (about 2,000 users: each page is
// read and recorded with its link, so a batch cut short resumes from its
// last page).
const discoverPages = 10

// endRound ends a discovery round whose pages were read and changes
// applied; a round asked for meanwhile follows at once.
func (c *connection) endRound(ctx workflow.Context) {
	d := &c.s.App.Discovery
	d.More, d.RoundEnded, d.LastRound = d.Requested, false, workflow.Now(ctx)
	d.Rounds++
	d.Requested, d.GroupsRead = false, false
}

// nextPage reads the selection's groups at a round's start, or else the
// next pages of /users/delta (pages at most, 0 for one); err is an error
// met before (then it only books it).
func (c *connection) nextPage(ctx workflow.Context, pages int, err error) {
	d := &c.s.App.Discovery
	if err == nil && len(c.s.App.Selection.Groups) > 0 && !d.GroupsRead {
		// Each round starts with the groups' members, read again: neither
		// /users/delta nor /groups/delta reports a change in a nested
		// group (docs/application.md#which-mailboxes).
		_, err = discoverGroups.run(ctx, DiscoverGroupsInput{ConnectionID: c.s.ID, Selection: c.s.App.Selection})
		if err == nil {
			d.GroupsRead, d.More, d.LastError, d.Backoff = true, true, "", Backoff{}
			return
		}
	}
	var page DiscoverPageResult
	if err == nil {
		page, err = discoverPage.run(ctx, DiscoverPageInput{ConnectionID: c.s.ID, Selection: c.s.App.Selection, Pages: pages})
	}
	if !c.still(StateActive) {
		return
	}
	if err != nil {
		c.discoveryFailed(ctx, err)
		return
	}
	d.LastError, d.Backoff, d.More = "", Backoff{}, true
	d.RoundEnded = page.RoundDone
}

// discoveryFailed books a failed step of discovery: its error, and a
// backoff unless it paused the connection.
func (c *connection) discoveryFailed(ctx workflow.Context, err error) {
	d := &c.s.App.Discovery
	d.LastError = err.Error()
	if detail, ok := errorDetail(err); ok {
		// A refusal people can act on (permission_missing,
		// group_not_found): its reason and sentence.
		d.LastError = detail.Reason + ": " + detail.Text
	}
	if !c.onActivityError(ctx, err) {
		d.Backoff.failed(workflow.Now(ctx))
	}
}

// applyMailboxChanges starts the mailboxes that joined and detaches those
// that left, then records them applied.
func (c *connection) applyMailboxChanges(ctx workflow.Context, changes []MailboxChange) error {
	var err error
	if c.atOnce || workflow.GetVersion(ctx, "app-mailbox-client-start", workflow.DefaultVersion, 1) == 1 {
		err = c.startJoined(ctx, changes)
	} else {
		err = c.startJoinedAsChildren(ctx, changes)
	}
	if err != nil {
		return err
	}
	if slices.ContainsFunc(changes, func(ch MailboxChange) bool { return !ch.Join }) {
		release, err := c.holdPrefill(ctx)
		if err != nil {
			return err
		}
		defer release()
	}
	for _, ch := range changes {
		if ch.Join {
			c.s.App.Discovery.Joined++
			continue
		}
		err := workflow.RequestCancelExternalWorkflow(ctx, MailboxWorkflowID(ch.MailboxID), "").Get(ctx, nil)
		if err != nil {
			// Its workflow has ended without detaching: the connection
			// applies the retention.
			c.log.Warn("mailbox workflow not found; applying its retention here", "mailbox", ch.MailboxID, "err", err)
			if err := c.detachEnded(ctx, ch.MailboxID, c.s.Settings.Retention); err != nil {
				return err
			}
		}
		c.s.App.Discovery.Left++
	}
	_, err = ackMailboxChanges.run(ctx, AckMailboxChangesInput{ConnectionID: c.s.ID, Changes: changes})
	return err
}

// mailboxInput is the input of a joined mailbox's workflow.
func (c *connection) mailboxInput(ch MailboxChange) MailboxInput {
	return MailboxInput{
		ID: ch.MailboxID, ConnectionID: c.s.ID, OrgID: c.s.OrgID, OwnerID: c.s.OwnerID, TenantID: c.s.TenantID, Mode: ModeApplication,
		Address: ch.Address, UserID: ch.UserID, DisplayName: ch.DisplayName, Settings: c.s.Settings, Granted: c.s.Granted, Options: c.opts,
		Backfilled: ch.Backfilled,
	}
}

// startJoined starts the joined mailboxes' workflows from one activity,
// which starts them in parallel through the Temporal client: neither the
// server's child starts, one at a time, nor a workflow task of the
// connection for each start bound how fast a tenant's mailboxes begin.
// They run on the connection's task queue, each its own workflow, as they
// did as children abandoned when the connection closes.
func (c *connection) startJoined(ctx workflow.Context, changes []MailboxChange) error {
	in := StartMailboxesInput{TaskQueue: workflow.GetInfo(ctx).TaskQueueName}
	for _, ch := range changes {
		if ch.Join {
			in.Mailboxes = append(in.Mailboxes, MailboxStart{Input: c.mailboxInput(ch), Summary: MailboxSummary(ch.MailboxID, c.s.ID, ch.Address),
				Details: ConnectionDetails(ch.MailboxID, c.s.OrgID, c.s.OwnerID, "mailbox of "+c.s.ID, ch.Address, StateActive)})
		}
	}
	if len(in.Mailboxes) == 0 {
		return nil
	}
	_, err := startMailboxes.run(ctx, in)
	return err
}

// startJoinedAsChildren starts the joined mailboxes' workflows as
// children, as runs from before app-mailbox-client-start do.
func (c *connection) startJoinedAsChildren(ctx workflow.Context, changes []MailboxChange) error {
	type started struct {
		ch MailboxChange
		f  workflow.ChildWorkflowFuture
	}
	var joins []started
	for _, ch := range changes {
		if !ch.Join {
			continue
		}
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            MailboxWorkflowID(ch.MailboxID),
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
			WaitForCancellation:   true,
			StaticSummary:         MailboxSummary(ch.MailboxID, c.s.ID, ch.Address),
			StaticDetails:         ConnectionDetails(ch.MailboxID, c.s.OrgID, c.s.OwnerID, "mailbox of "+c.s.ID, ch.Address, StateActive),
		})
		// By name: the function itself would make an initialisation cycle
		// (its handlers read the duties, which lead here).
		f := workflow.ExecuteChildWorkflow(cctx, MailboxWorkflowName, c.mailboxInput(ch))
		joins = append(joins, started{ch, f})
	}
	for _, j := range joins {
		if err := j.f.GetChildWorkflowExecution().Get(ctx, nil); err != nil && !temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			return err
		}
	}
	return nil
}

func (c *connection) expiryMargins() []time.Duration {
	if len(c.opts.ExpiryMargins) > 0 {
		return c.opts.ExpiryMargins
	}
	return DefaultExpiryMargins
}

// told says whether a margin was told for the current secret.
func (a *AppState) told(m time.Duration) bool {
	return slices.Contains(a.WarnedSeconds, int64(m/time.Second)) ||
		(m%time.Hour == 0 && slices.Contains(a.Warned, int(m/time.Hour)))
}

// marginID names a margin in event IDs: in hours when it is whole hours
// (as before margins could be shorter), else in seconds.
func marginID(m time.Duration) string {
	if m%time.Hour == 0 {
		return fmt.Sprint(int64(m / time.Hour))
	}
	return fmt.Sprintf("%ds", int64(m/time.Second))
}

// expiryWarning is the next margin not yet told for the current secret.
func (c *connection) expiryWarning() (time.Duration, bool) {
	if !c.isApplication() || c.s.App.SecretExpires.IsZero() {
		return 0, false
	}
	for _, m := range c.expiryMargins() {
		if !c.s.App.told(m) {
			return m, true
		}
	}
	return 0, false
}

func (c *connection) expiryDue(ctx workflow.Context) (time.Time, bool) {
	m, ok := c.expiryWarning()
	if !ok {
		return time.Time{}, false
	}
	return c.s.App.SecretExpires.Add(-m), true
}

// warnExpiry tells the app the client secret expires soon: the state's
// reason says so, and an event is recorded, once per margin.
func (c *connection) warnExpiry(ctx workflow.Context) {
	m, _ := c.expiryWarning()
	now := workflow.Now(ctx)
	exp := c.s.App.SecretExpires
	// Every margin already passed is told with this one.
	for _, other := range c.expiryMargins() {
		if !exp.Add(-other).After(now) && !c.s.App.told(other) {
			c.s.App.WarnedSeconds = append(c.s.App.WarnedSeconds, int64(other/time.Second))
		}
	}
	left := exp.Sub(now)
	text := fmt.Sprintf("The client secret expires on %s (in %s): create a new one and give it to PUT /v1/connections/%s/credential before then.",
		exp.UTC().Format(time.RFC3339), humanDays(left), c.s.ID)
	c.moveTo(ctx, StateActive, ReasonCredentialExpiring, text, nil)
	if err := c.recordEvent(ctx, RecordEventInput{ConnectionID: c.s.ID, EventID: fmt.Sprintf("%s:credential_expiring:%d:%s", c.s.ID, c.s.App.Rotations, marginID(m)),
		Type: "connection.credential_expiring", Data: map[string]any{"expires_at": exp.UTC().Format(time.RFC3339), "margin_days": int(m / (24 * time.Hour)),
			"margin_seconds": int64(m / time.Second), "text": text}}); err != nil {
		c.log.Error("record connection.credential_expiring", "err", err)
	}
}

func humanDays(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour)/time.Hour))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d.Round(time.Minute)/time.Minute))
	}
	return fmt.Sprintf("%d seconds", int(d.Round(time.Second)/time.Second))
}

func (c *connection) credentialCheckDue(ctx workflow.Context) (time.Time, bool) {
	if !c.isApplication() || c.s.App.SecretExpires.IsZero() || c.s.LastRefresh.After(c.s.App.SecretExpires) {
		return time.Time{}, false
	}
	// Just after the expiry a token is asked for: the refusal moves the
	// connection to reauth_required at once, with the reason, and the
	// mailboxes are told to pause. The few seconds are for clocks that
	// disagree with Entra's; a token granted all the same (a clock behind)
	// ends the check, and the first refusal a mailbox meets does its work.
	return c.s.App.SecretExpires.Add(expiryCheckSlack), true
}

func (c *connection) resumeDue(ctx workflow.Context) (time.Time, bool) {
	if !c.isApplication() || !c.s.App.Resume {
		return time.Time{}, false
	}
	return time.Time{}, true
}

// resumeMailboxes tells the next batch of mailboxes the credential works
// again.
func (c *connection) resumeMailboxes(ctx workflow.Context) {
	page, err := liveMailboxes.run(ctx, LiveMailboxesInput{ConnectionID: c.s.ID, After: c.s.App.ResumeAfter, Limit: discoveryBatch})
	if err != nil {
		c.log.Error("list mailboxes to resume", "err", err)
		return
	}
	var fs []workflow.Future
	for _, id := range page.IDs {
		fs = append(fs, workflow.SignalExternalWorkflow(ctx, MailboxWorkflowID(id), "", SignalCredential, CredentialSignal{}))
	}
	for i, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			c.log.Warn("could not tell a mailbox the credential is back", "mailbox", page.IDs[i], "err", err)
		}
	}
	if len(page.IDs) < discoveryBatch {
		c.s.App.Resume, c.s.App.ResumeAfter = false, ""
		return
	}
	c.s.App.ResumeAfter = page.IDs[len(page.IDs)-1]
}

// credentialRefused is how an application connection takes the refusal of
// its credential: reauth_required with the reason, and its mailboxes told
// to pause (pauseMailboxes), however it learnt of it.
func (c *connection) credentialRefused(ctx workflow.Context, reason, text string) {
	if c.s.State != StateReauthRequired && c.moveTo(ctx, StateReauthRequired, reason, text, nil) {
		c.s.App.Pause, c.s.App.PauseAfter = true, ""
		c.s.App.Resume, c.s.App.ResumeAfter = false, ""
	}
}

// pauseMailboxes tells the next batch of mailboxes the credential was
// refused: each pauses at its cursor without asking for a token itself.
func (c *connection) pauseMailboxes(ctx workflow.Context) {
	page, err := liveMailboxes.run(ctx, LiveMailboxesInput{ConnectionID: c.s.ID, After: c.s.App.PauseAfter, Limit: discoveryBatch})
	if err != nil {
		c.log.Error("list mailboxes to pause", "err", err)
		c.s.App.Pause = false // the first refusal each meets pauses it
		return
	}
	sig := CredentialSignal{Dead: true, Reason: c.s.Reason, Text: c.s.ReasonText}
	var fs []workflow.Future
	for _, id := range page.IDs {
		fs = append(fs, workflow.SignalExternalWorkflow(ctx, MailboxWorkflowID(id), "", SignalCredential, sig))
	}
	for i, f := range fs {
		if err := f.Get(ctx, nil); err != nil {
			c.log.Warn("could not tell a mailbox the credential was refused", "mailbox", page.IDs[i], "err", err)
		}
	}
	if len(page.IDs) < discoveryBatch {
		c.s.App.Pause, c.s.App.PauseAfter = false, ""
		return
	}
	c.s.App.PauseAfter = page.IDs[len(page.IDs)-1]
}

func (c *connection) validateCredential(in CredentialInput) error {
	switch {
	case !c.isApplication():
		return errors.New("only an application connection has a client credential")
	case c.s.State == StateDisconnecting || c.s.State == StateDisconnected:
		return fmt.Errorf("the connection is %s", c.s.State)
	}
	return nil
}

// onCredential takes a new credential (already checked and in Vault): the
// expiry warnings start over, and a connection waiting for it resumes,
// with every mailbox.
func (c *connection) onNewCredential(ctx workflow.Context, in CredentialInput) (Status, error) {
	a := c.s.App
	a.SecretExpires, a.Warned, a.WarnedSeconds = in.SecretExpires, nil, nil
	a.Pause, a.PauseAfter = false, ""
	a.Rotations++
	if len(in.Roles) > 0 {
		c.s.GrantedScopes = in.Roles
	}
	c.s.LastRefresh = workflow.Now(ctx)
	switch c.s.State {
	case StateReauthRequired:
		if c.moveTo(ctx, StateConnecting, "", "", nil) {
			c.moveTo(ctx, StateActive, "", "", map[string]any{"credential_rotated": true})
		}
		c.resume()
		a.Resume, a.ResumeAfter = true, ""
		a.Discovery.More, a.Discovery.Backoff = true, Backoff{}
	case StateActive:
		if c.s.Reason == ReasonCredentialExpiring {
			c.moveTo(ctx, StateActive, "", "", nil)
		}
	}
	return c.status(ctx), nil
}

func (c *connection) validateDiscover() error {
	if !c.isApplication() {
		return errors.New("only an application connection discovers mailboxes")
	}
	if c.s.State != StateActive {
		return fmt.Errorf("the connection is %s; discovery runs while it is active", c.s.State)
	}
	return nil
}

func (c *connection) onDiscover(ctx workflow.Context) (Status, error) {
	d := &c.s.App.Discovery
	if d.More || d.Held || d.RoundEnded {
		// A round is under way (reading pages, or its pages read and its
		// changes being applied): it may have read the directory already.
		d.Requested = true
	}
	d.More, d.Backoff = true, Backoff{}
	return c.status(ctx), nil
}

// detachAllMailboxes is an application connection's saga step: every live
// mailbox is cancelled (each applies its retention), in batches, and the
// step waits until none is left.
func (c *connection) detachAllMailboxes(ctx workflow.Context) error {
	if workflow.GetVersion(ctx, "app-end-mailboxes-at-once", workflow.DefaultVersion, 1) == 1 {
		// A page at a time through the Temporal client, in one activity:
		// a cancel request from the workflow cost five events of its
		// history for each mailbox, and a mailbox backfilled ahead and
		// not started yet (a whole batch of them) a failed request and
		// two steps more.
		after := ""
		for {
			res, err := endMailboxes.run(ctx, EndMailboxesInput{ConnectionID: c.s.ID, After: after, Limit: endBatch, Retention: c.s.Settings.Retention})
			if err != nil {
				return err
			}
			for _, id := range res.Detached {
				delete(c.s.Mailboxes, id)
			}
			if len(res.IDs) < endBatch {
				break
			}
			after = res.IDs[len(res.IDs)-1]
		}
		return c.awaitMailboxesGone(ctx)
	}
	after := ""
	for {
		page, err := liveMailboxes.run(ctx, LiveMailboxesInput{ConnectionID: c.s.ID, After: after, Limit: 200})
		if err != nil {
			return err
		}
		for _, id := range page.IDs {
			if err := workflow.RequestCancelExternalWorkflow(ctx, MailboxWorkflowID(id), "").Get(ctx, nil); err != nil {
				if err := c.detachEnded(ctx, id, c.s.Settings.Retention); err != nil {
					return err
				}
			}
		}
		if len(page.IDs) < 200 {
			break
		}
		after = page.IDs[len(page.IDs)-1]
	}
	return c.awaitMailboxesGone(ctx)
}

// awaitMailboxesGone waits until every mailbox's workflow has detached it,
// then closes the directory.
func (c *connection) awaitMailboxesGone(ctx workflow.Context) error {
	for {
		page, err := liveMailboxes.run(ctx, LiveMailboxesInput{ConnectionID: c.s.ID, Limit: 1})
		if err != nil {
			return err
		}
		if len(page.IDs) == 0 {
			_, err := closeDirectory.run(ctx, ConnectionRef{ConnectionID: c.s.ID})
			return err
		}
		if err := workflow.Sleep(ctx, 5*time.Second); err != nil {
			return err
		}
	}
}
