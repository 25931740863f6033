package workflows

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// connection is the running state of a Connection workflow. Everything
// that must survive continue-as-new is in s.
type connection struct {
	s    ConnectionState
	opts Options
	log  log.Logger
	// settingsMu orders settings updates, each applied and answered in turn.
	settingsMu workflow.Mutex
	// settingsErr is why the registry refused the settings of the update
	// under way, which were then given up.
	settingsErr error
	progress    workflow.ReceiveChannel
	changes     workflow.ReceiveChannel
	lifecycle   workflow.ReceiveChannel
	credential  workflow.ReceiveChannel
	ended       workflow.ReceiveChannel
	contacts    workflow.ReceiveChannel
	consents    workflow.ReceiveChannel
	// cancelBackfill cancels the running backfill child (set while one
	// runs; a run never continues as new under a running backfill).
	cancelBackfill workflow.CancelFunc
	// cancelPrefill cancels the running backfill of joining mailboxes
	// (set while one runs); prefillBatch says a batch is under way, and
	// prefillHeld holds the next (holdPrefill).
	cancelPrefill workflow.CancelFunc
	prefillBatch  bool
	prefillHeld   bool
	// applying: a batch of discovered mailboxes is being started or
	// detached (discoverAhead).
	applying bool
	// alarm is the timer the active loop sleeps on (steady-timer).
	alarm alarm
	// atOnce: this run started since connection-versions-at-once and takes
	// every change listed there without asking for each (versions).
	atOnce bool
}

// alarm is the one timer an active workflow sleeps on. It stands while the
// time it is due for stands or comes later: a round that moves the next
// reconciliation 6 hours on does not start a timer of its own, and the
// timer that fires early only sets the next one. Only an earlier time
// replaces it, cancelled rather than left to fire for nothing.
type alarm struct {
	at     time.Time
	fired  workflow.Future
	cancel workflow.CancelFunc
}

// set makes the alarm go off at the latest at at.
func (a *alarm) set(ctx workflow.Context, at time.Time) {
	if a.fired != nil && !a.fired.IsReady() && !at.Before(a.at) {
		return
	}
	a.stop()
	tctx, cancel := workflow.WithCancel(ctx)
	a.at, a.cancel = at, cancel
	a.fired = workflow.NewTimer(tctx, at.Sub(workflow.Now(ctx)))
}

// rang says whether the alarm went off.
func (a *alarm) rang() bool { return a.fired != nil && a.fired.IsReady() }

// stop cancels the alarm if it is still to go off.
func (a *alarm) stop() {
	if a.fired != nil && !a.fired.IsReady() {
		a.cancel()
	}
	a.fired, a.cancel = nil, nil
}

// Connection is the entity workflow of one connected mailbox: consent,
// token upkeep, backfill, live sync, re-auth and disconnect. Cancelling it
// (in the Temporal UI or CLI) disconnects it.
func Connection(ctx workflow.Context, in ConnectionInput) (ConnectionResult, error) {
	c, err := newConnection(ctx, in)
	if err != nil {
		return ConnectionResult{}, err
	}
	return c.run(ctx)
}

var refPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

func newConnection(ctx workflow.Context, in ConnectionInput) (*connection, error) {
	c := &connection{opts: in.Options.withDefaults(), log: workflow.GetLogger(ctx), settingsMu: workflow.NewMutex(ctx)}
	if in.State != nil {
		c.s = *in.State
		c.s.Runs++
	} else {
		if in.ID == "" || in.OrgID == "" || in.OwnerID == "" {
			return nil, temporal.NewNonRetryableApplicationError("a connection needs an ID, an organisation and an owner", "InvalidInput", nil)
		}
		if err := in.Settings.Validate(); err != nil {
			return nil, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", nil)
		}
		mode := in.Mode
		if mode == "" {
			mode = ModeDelegated
		}
		settings := in.Settings.WithDefaults()
		c.s = ConnectionState{ID: in.ID, OrgID: in.OrgID, OwnerID: in.OwnerID, Mode: mode, Settings: settings,
			State: StatePendingConsent, Since: workflow.Now(ctx),
			// The registry row starts so (connect writes it before the start).
			Registry: RegistryMirror{State: StatePendingConsent, Settings: &settings}}
		if mode == ModeApplication {
			if in.Application == nil {
				return nil, temporal.NewNonRetryableApplicationError("an application connection starts with its checked credential", "InvalidInput", nil)
			}
			c.startApplication(ctx, *in.Application)
		}
	}
	c.log = log.With(c.log, "connection", c.s.ID)
	// Before the handlers: an update or a signal already waiting runs as
	// soon as its handler is registered.
	c.versions(ctx)
	if err := c.registerHandlers(ctx); err != nil {
		return nil, err
	}
	if p := c.s.Pending; p.Sync || p.Renew || p.Resubscribe || len(p.Reanchor) > 0 {
		c.log.Info("resuming work signalled before continue-as-new", "pending", c.s.Pending)
	}
	if err := c.upsertSearchAttributes(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *connection) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return c.status(ctx), nil }); err != nil {
		return err
	}
	updates := []struct {
		name      string
		handler   any
		validator any
	}{
		{UpdateConsent, c.onConsent, c.validateConsent},
		{UpdateSettings, c.onSettings, c.validateSettings},
		{UpdateDisconnect, c.onDisconnect, c.validateDisconnect},
		{UpdateResync, c.onResync, c.validateResync},
		{UpdateAttach, c.onAttach, c.validateAttach},
		{UpdateDetachEnded, c.onDetachEnded, c.validateDetachEnded},
		{UpdateCredential, c.onNewCredential, c.validateCredential},
		{UpdateDiscover, c.onDiscover, c.validateDiscover},
	}
	for _, u := range updates {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, u.name, u.handler, workflow.UpdateHandlerOptions{Validator: u.validator}); err != nil {
			return err
		}
	}
	c.progress = workflow.GetSignalChannel(ctx, SignalBackfillProgress)
	c.changes = workflow.GetSignalChannel(ctx, SignalChanges)
	c.lifecycle = workflow.GetSignalChannel(ctx, SignalLifecycle)
	c.credential = workflow.GetSignalChannel(ctx, SignalCredential)
	c.ended = workflow.GetSignalChannel(ctx, SignalMailboxEnded)
	c.contacts = workflow.GetSignalChannel(ctx, SignalContacts)
	c.consents = workflow.GetSignalChannel(ctx, SignalConsent)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(c.progress, func(ch workflow.ReceiveChannel, _ bool) {
				var p BackfillProgress
				ch.Receive(ctx, &p)
				c.applyProgress(p)
			})
			sel.AddReceive(c.changes, func(ch workflow.ReceiveChannel, _ bool) {
				var sig ChangesSignal
				ch.Receive(ctx, &sig)
				c.onChanges(ctx, sig)
			})
			sel.AddReceive(c.lifecycle, func(ch workflow.ReceiveChannel, _ bool) {
				var l LifecycleSignal
				ch.Receive(ctx, &l)
				c.onLifecycle(l)
			})
			sel.AddReceive(c.credential, func(ch workflow.ReceiveChannel, _ bool) {
				var sig CredentialSignal
				ch.Receive(ctx, &sig)
				c.onCredential(ctx, sig)
			})
			sel.AddReceive(c.ended, func(ch workflow.ReceiveChannel, _ bool) {
				var e MailboxEnded
				ch.Receive(ctx, &e)
				delete(c.s.Mailboxes, e.MailboxID)
			})
			sel.AddReceive(c.contacts, func(ch workflow.ReceiveChannel, _ bool) {
				ch.Receive(ctx, nil)
				c.s.Pending.Contacts = true
			})
			sel.AddReceive(c.consents, func(ch workflow.ReceiveChannel, _ bool) {
				var in ConsentInput
				ch.Receive(ctx, &in)
				c.onConsentSignal(ctx, in)
			})
			sel.Select(ctx)
			if ctx.Err() != nil {
				return
			}
		}
	})
	return nil
}

// searchAttrs is the search attributes the workflow's state calls for.
func (c *connection) searchAttrs() []keyword {
	return searchAttrs(c.credentialID(), c.s.State, c.s.Mode, c.s.TenantID, c.s.Mailbox, c.s.Sync.Mode)
}

// upsertSearchAttributes sets the search attributes the state calls for. A
// run since connection-versions-at-once sets only those that differ from
// what the workflow has (from its start, its run before or an upsert), and
// nothing when none does; runs before set them all.
func (c *connection) upsertSearchAttributes(ctx workflow.Context) error {
	updates := changedAttrs(ctx, c.searchAttrs(), c.atOnce)
	// The current details follow the same changes (no history event).
	c.showDetails(ctx)
	if len(updates) == 0 {
		return nil
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}

// run is the main loop: write what the registry lacks, continue as new
// when the history is long, then do what the state asks. A cancellation of
// the workflow, wherever it lands, disconnects the connection.
func (c *connection) run(ctx workflow.Context) (ConnectionResult, error) {
	for {
		err := c.turn(ctx)
		var can *workflow.ContinueAsNewError
		switch {
		case errors.As(err, &can):
			return ConnectionResult{}, err
		case temporal.IsCanceledError(err) || ctx.Err() != nil:
			return c.canceled(ctx)
		case err != nil:
			return ConnectionResult{}, err
		case c.s.State == StateDisconnected:
			return ConnectionResult{State: c.s.State, Reason: c.s.Reason}, nil
		}
	}
}

// turn is one pass of the main loop.
func (c *connection) turn(ctx workflow.Context) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	c.syncRegistry(ctx)
	if c.shouldContinueAsNew(ctx) {
		return c.continueAsNew(ctx)
	}
	switch c.s.State {
	case StatePendingConsent, StateReauthRequired, StateAdminConsentRequired, StateAccessLost:
		if c.s.State == StateReauthRequired && c.isApplication() && c.s.App.Pause {
			c.pauseMailboxes(ctx)
			return nil
		}
		state := c.s.State
		return workflow.Await(ctx, func() bool { return c.s.State != state || c.registryBehind() || c.shouldContinueAsNew(ctx) })
	case StateConnecting:
		c.exchange(ctx)
	case StateActive:
		return c.active(ctx)
	case StateDisconnecting:
		c.disconnect(ctx)
	case StateDisconnected:
	default:
		return fmt.Errorf("connection in unknown state %q", c.s.State)
	}
	return nil
}

// canceled disconnects a connection whose workflow was cancelled: the saga
// runs in a context the cancellation does not reach.
func (c *connection) canceled(ctx workflow.Context) (ConnectionResult, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if c.s.State != StateDisconnecting {
		c.moveTo(dctx, StateDisconnecting, ReasonWorkflowCanceled, "The connection's workflow was cancelled; the connection is being disconnected.", nil)
	}
	c.log.Info("workflow cancelled: disconnecting")
	c.syncRegistry(dctx)
	c.disconnect(dctx)
	return ConnectionResult{State: c.s.State, Reason: c.s.Reason}, nil
}

func (c *connection) validateConsent(in ConsentInput) error {
	switch {
	case c.isMailbox():
		return errors.New("a mailbox takes no consent; its connection does")
	case !waitingForConsent(c.s.State):
		return fmt.Errorf("the connection is %s and is not waiting for consent", c.s.State)
	case (in.Ref == "") == (in.Reason == ""):
		return errors.New("give either a consent reference or a refusal reason")
	case in.Ref != "" && !refPattern.MatchString(in.Ref):
		return errors.New("the consent reference is malformed")
	case in.Ref != "" && in.Ref == c.s.TakenConsentRef:
		return errors.New("this consent was handed over already")
	}
	return nil
}

// onConsent hands a consent over: a reference to the code in Vault (then
// waits until it has been exchanged), or a refusal.
func (c *connection) onConsent(ctx workflow.Context, in ConsentInput) (Status, error) {
	if in.Reason != "" {
		c.moveTo(ctx, c.refusedState(ctx, c.s.State, in.Reason), in.Reason, in.ReasonText, nil)
		return c.status(ctx), nil
	}
	reconsent := c.s.State == StateReauthRequired || c.s.UserID != ""
	if !c.moveTo(ctx, StateConnecting, "", "", nil) {
		return c.status(ctx), nil
	}
	c.s.ConsentRef, c.s.TakenConsentRef, c.s.Reconsent = in.Ref, in.Ref, reconsent
	if err := workflow.Await(ctx, func() bool { return c.s.State != StateConnecting }); err != nil {
		return Status{}, err
	}
	return c.status(ctx), nil
}

// onConsentSignal takes a consent handed over as a signal (SignalConsent)
// as the update takes it, when the workflow waits for one; another is
// logged and dropped (its code, if any, goes with the connection's other
// secrets).
func (c *connection) onConsentSignal(ctx workflow.Context, in ConsentInput) {
	if err := c.validateConsent(in); err != nil {
		c.log.Warn("consent signal ignored", "err", err)
		return
	}
	workflow.Go(ctx, func(gctx workflow.Context) {
		if _, err := c.onConsent(gctx, in); err != nil && !temporal.IsCanceledError(err) {
			c.log.Warn("consent signal", "err", err)
		}
	})
}

func (c *connection) validateSettings(in Settings) error {
	if c.s.State == StateDisconnecting || c.s.State == StateDisconnected {
		return fmt.Errorf("the connection is %s", c.s.State)
	}
	if err := in.Validate(); err != nil {
		return err
	}
	// The API always sends the settings in full: a folder list is part of
	// them, and the registry is only ever given a valid one.
	return ValidateFolders(in.Folders)
}

// onSettings applies new settings; the duties pick them up (other folders
// or a wider window backfill what is missing), and the main loop writes
// them to the registry before the update answers.
func (c *connection) onSettings(ctx workflow.Context, in Settings) (Status, error) {
	if err := c.settingsMu.Lock(ctx); err != nil {
		return Status{}, err
	}
	defer c.settingsMu.Unlock()
	c.contactFilterChanged(c.s.Settings.ContactFilter, in.ContactFilter)
	c.bodiesChanged(c.s.Settings.WithDefaults().Bodies, in.WithDefaults().Bodies)
	c.s.Settings = in.WithDefaults()
	want := c.s.Settings
	c.settingsErr = nil
	// Answer once the registry holds these settings (or the connection
	// ended, or other settings replaced them, or the registry refused them
	// and the workflow went back to the ones it holds).
	if err := workflow.Await(ctx, func() bool {
		r := c.s.Registry.Settings
		return r != nil && settingsEqual(*r, want) || !settingsEqual(c.s.Settings, want) ||
			c.s.State == StateDisconnecting || c.s.State == StateDisconnected
	}); err != nil {
		return Status{}, err
	}
	if err := c.settingsErr; err != nil {
		c.settingsErr = nil
		return Status{}, temporal.NewApplicationErrorWithCause("the registry could not record the settings; they are unchanged", ErrSettingsNotRecorded, err)
	}
	return c.status(ctx), nil
}

func (c *connection) validateResync(in ResyncInput) error {
	if c.s.State == StateAccessLost && len(in.Folders) == 0 {
		return nil // try the mailbox again
	}
	if !c.syncsMail() && c.s.State == StateActive {
		return errors.New("this connection syncs no mailbox of its own; resync its mailboxes")
	}
	if c.s.State != StateActive {
		return fmt.Errorf("only an active connection can resync; this one is %s", c.s.State)
	}
	if len(in.Folders) > 0 && !c.live() {
		return errors.New("the first backfill has not finished; there is nothing to re-anchor yet")
	}
	if len(in.Folders) > 0 {
		if err := ValidateResyncFolders(in.Folders); err != nil {
			return err
		}
	}
	for _, f := range in.Folders {
		if f != "*" && !c.knowsFolder(f) {
			return fmt.Errorf("the connection syncs no folder %q; name a synced folder's ID or well-known name, or \"*\"", f)
		}
	}
	return nil
}

// knowsFolder says whether a folder (ID, well-known or display name) is
// one the connection syncs.
func (c *connection) knowsFolder(f string) bool {
	if slices.ContainsFunc(c.s.Settings.Folders, func(root string) bool { return strings.EqualFold(root, f) }) {
		return true
	}
	for _, p := range c.s.Backfill.Folders {
		if p.ID == f || strings.EqualFold(p.Name, f) {
			return true
		}
	}
	return false
}

// onResync asks for a delta round, re-anchoring the folders named; a
// mailbox whose access was lost tries again (and goes back to waiting if
// the access is still missing).
func (c *connection) onResync(ctx workflow.Context, in ResyncInput) (Status, error) {
	if c.s.State == StateAccessLost {
		// Proven before the mailbox goes back to syncing: a resync while
		// the rights are still missing answers why, and the app is not
		// told of the loss again.
		if _, err := checkMailbox.run(ctx, CheckMailboxInput{ConnectionID: c.s.ConnectionID, Address: c.s.Mailbox}); err != nil {
			return Status{}, err
		}
		c.s.AccessLostTold = false
		if c.moveTo(ctx, StateActive, "", "", nil) {
			c.s.Sync.Backoff, c.s.Backfill.Backoff = Backoff{}, Backoff{}
			if c.isApplicationMailbox() && c.s.Sync.Mode == SyncPolling && c.appMailboxPush(ctx) {
				// Graph may let the app watch it again too.
				c.s.Pending.Resubscribe = true
			}
		}
	}
	c.s.Pending.Sync = true
	for _, f := range in.Folders {
		if !slices.Contains(c.s.Pending.Reanchor, f) {
			c.s.Pending.Reanchor = append(c.s.Pending.Reanchor, f)
		}
	}
	return c.status(ctx), nil
}

// onLifecycle reacts to Graph's lifecycle events
// (docs/graph.md#lifecycle-notifications): a removed subscription is
// recreated, reauthorization renews, and after missed notifications a
// delta round catches up. Each also syncs, to be safe.
func (c *connection) onLifecycle(l LifecycleSignal) {
	if l.SubscriptionID != "" && l.SubscriptionID != c.s.Sync.SubscriptionID {
		return // about a subscription this connection has replaced
	}
	switch l.Event {
	case LifecycleSubscriptionRemoved:
		c.s.Pending.Resubscribe = true
	case LifecycleReauthorizationRequired:
		c.s.Pending.Renew = true
	}
	c.s.Pending.Sync = true
}

func (c *connection) validateDisconnect() error {
	if c.s.State == StateDisconnected {
		return fmt.Errorf("the connection is already %s", c.s.State)
	}
	return nil
}

// onDisconnect starts the disconnect saga; it works from any state, and
// asking again while it runs is answered with where it stands.
func (c *connection) onDisconnect(ctx workflow.Context) (Status, error) {
	if c.s.State != StateDisconnecting {
		c.moveTo(ctx, StateDisconnecting, ReasonDisconnectRequested, "The connection is being disconnected.", nil)
		c.s.DisconnectStep = "starting"
	}
	return c.status(ctx), nil
}

func (c *connection) applyProgress(p BackfillProgress) {
	if p.Run != 0 && p.Run != c.s.Backfill.Runs {
		return // from a backfill that has ended
	}
	if c.s.Backfill.Folders == nil {
		c.s.Backfill.Folders = map[string]FolderProgress{}
	}
	for _, f := range p.Folders {
		if _, seen := c.s.Backfill.Folders[f.ID]; !seen {
			c.s.Backfill.Folders[f.ID] = f
		}
	}
	if p.Folder.ID != "" {
		c.s.Backfill.Folders[p.Folder.ID] = p.Folder
	}
	for _, f := range p.Updates {
		c.s.Backfill.Folders[f.ID] = f
	}
}

func (c *connection) status(ctx workflow.Context) Status {
	st := Status{ConnectionState: c.s, HistoryLen: workflow.GetInfo(ctx).GetCurrentHistoryLength()}
	st.NextAction, st.NextActionAt = c.nextAction(ctx)
	if c.s.Backfill.Running {
		st.Progress = estimate(c.s.Backfill, workflow.Now(ctx))
	}
	return st
}

// nextAction says what the connection does next, in words, and when.
func (c *connection) nextAction(ctx workflow.Context) (string, time.Time) {
	switch c.s.State {
	case StatePendingConsent:
		return "waiting for the user's consent", time.Time{}
	case StateConnecting:
		return "exchanging the authorization code", time.Time{}
	case StateReauthRequired:
		if c.isMailbox() {
			return "waiting for the connection's account to sign in again", time.Time{}
		}
		return "waiting for the user to sign in again", time.Time{}
	case StateAccessLost:
		return "waiting for the mailbox's rights to be restored and a resync", time.Time{}
	case StateAdminConsentRequired:
		return "waiting for an administrator's consent, then the user's sign-in", time.Time{}
	case StateActive:
		if c.s.Backfill.Running {
			return "backfilling", time.Time{}
		}
		if d, at := c.nextDuty(ctx); d != nil {
			return d.name, at
		}
	case StateDisconnecting:
		if c.s.DisconnectStep == "" {
			return "disconnecting", time.Time{}
		}
		return "disconnecting: " + c.s.DisconnectStep, time.Time{}
	}
	return "", time.Time{}
}

// exchange turns the consent reference into tokens and an identity. The
// result applies only if the connection is still connecting: a disconnect
// that arrived meanwhile wins.
func (c *connection) exchange(ctx workflow.Context) {
	in := ExchangeCodeInput{ConnectionID: c.s.ID, Ref: c.s.ConsentRef}
	back := StatePendingConsent
	if c.s.Reconsent {
		in.ExpectUserID, back = c.s.UserID, StateReauthRequired
	}
	res, err := exchangeCode.run(ctx, in)
	c.s.ConsentRef = ""
	if !c.still(StateConnecting) {
		return
	}
	if err != nil {
		if temporal.IsCanceledError(err) {
			return
		}
		reason, text := ReasonConsentFailed, "The sign-in could not be completed; try again."
		if d, ok := errorDetail(err); ok {
			reason, text = d.Reason, d.Text
		}
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == ErrMailboxTaken {
			reason, text = ReasonMailboxTaken, "This mailbox is already connected; disconnect it first or connect another account."
		}
		c.moveTo(ctx, c.refusedState(ctx, back, reason), reason, text, nil)
		return
	}
	c.s.UserID, c.s.Mailbox, c.s.TenantID, c.s.DisplayName = res.UserID, res.Mailbox, res.TenantID, res.DisplayName
	c.s.GrantedScopes, c.s.Granted = res.GrantedScopes, res.Granted
	c.s.AccessExpiry, c.s.LastRefresh = res.AccessExpiry, workflow.Now(ctx)
	text := ""
	if c.s.Settings.Features.Read && !c.s.Granted.Read {
		text = "The user granted sending only: the connection is send-only and syncs no mail."
	}
	reconsent := c.s.Reconsent
	c.s.Reconsent = false
	c.moveTo(ctx, StateActive, "", text, map[string]any{"mailbox": res.Mailbox, "reauthorized": reconsent})
	if reconsent {
		c.resume()
		c.tellMailboxes(ctx, CredentialSignal{})
	}
}

// resume is what a re-consent does to the duties: everything that waited
// for tokens runs now, and a catch-up round fetches what changed while the
// tokens were dead.
func (c *connection) resume() {
	c.s.Pending.Sync = true
	if c.s.Sync.Mode == SyncPush {
		c.s.Pending.Renew = true
	}
	c.s.Sync.Backoff, c.s.Sync.Subscribe, c.s.Backfill.Backoff = Backoff{}, Backoff{}, Backoff{}
}

// errorDetail is the reason and sentence an activity's error carries.
func errorDetail(err error) (struct{ Reason, Text string }, bool) {
	var detail struct{ Reason, Text string }
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.HasDetails() && appErr.Details(&detail) == nil && detail.Reason != "" {
		return detail, true
	}
	return detail, false
}

// active runs the first duty that is due, or sleeps until one is, or
// until something (an update, a signal, the backfill ending) makes one
// due sooner.
func (c *connection) active(ctx workflow.Context) error {
	d, at := c.nextDuty(ctx)
	now := workflow.Now(ctx)
	if d != nil && !at.After(now) {
		d.run(c, ctx)
		return nil
	}
	wait := at.Sub(now)
	if d == nil {
		wait = c.opts.KeepAliveEvery
	}
	woken := func() bool {
		if c.s.State != StateActive || c.registryBehind() || c.shouldContinueAsNew(ctx) {
			return true
		}
		next, sooner := c.nextDuty(ctx)
		return next != nil && (d == nil || sooner.Before(at))
	}
	if !c.steadyTimer(ctx) {
		_, err := workflow.AwaitWithTimeout(ctx, wait, woken)
		return err
	}
	c.alarm.set(ctx, now.Add(wait))
	err := workflow.Await(ctx, func() bool { return c.alarm.rang() || woken() })
	if c.s.State != StateActive {
		// The states outside active wait for a change, not a time.
		c.alarm.stop()
	}
	return err
}

// steadyTimer says whether the active loop sleeps on one standing alarm
// (steady-timer); before, every sleep started a timer of its own, which
// then fired whether or not anything still waited for it. The SDK keeps
// the version a run first got: asking again costs no marker.
func (c *connection) steadyTimer(ctx workflow.Context) bool {
	if c.atOnce {
		return true
	}
	return workflow.GetVersion(ctx, "steady-timer", workflow.DefaultVersion, 1) == 1
}

// subscribe creates the connection's subscription, or switches to polling
// when Graph cannot push to it (and says why).
func (c *connection) subscribe(ctx workflow.Context) {
	replace := c.s.Pending.Resubscribe || c.s.Sync.SubscriptionID != ""
	c.s.Pending.Resubscribe = false
	if why := c.pollsOnly(ctx); why != "" {
		c.setSyncMode(ctx, SyncPolling, why)
		return
	}
	if c.opts.NotificationURL == "" {
		c.setSyncMode(ctx, SyncPolling, "no notification URL is configured")
		return
	}
	// An application connection's mailbox is subscribed to with the
	// connection's token, and its subscription is the mailbox's.
	res, err := ensureSubscription.run(ctx, EnsureSubscriptionInput{
		ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), UserID: c.s.UserID, NotificationURL: c.opts.NotificationURL,
		LifecycleURL: c.opts.LifecycleURL, Lifetime: c.opts.SubscriptionLifetime, Replace: replace,
	})
	if !c.still(StateActive) {
		return
	}
	if err != nil {
		c.s.Pending.Resubscribe = replace
		if !c.onActivityError(ctx, err) {
			c.s.Sync.Subscribe.failed(workflow.Now(ctx))
		}
		return
	}
	c.s.Sync.Subscribe = Backoff{}
	c.s.Pending.Sync = true // catch up on what happened while unsubscribed
	if res.PollReason != "" {
		c.setSyncMode(ctx, SyncPolling, res.PollReason)
		c.s.Sync.SubscriptionID = ""
		return
	}
	c.setSyncMode(ctx, SyncPush, "")
	c.s.Sync.SubscriptionID, c.s.Sync.SubscriptionExpires = res.ID, res.Expiration
	c.s.Sync.SubscriptionRenewAt = renewalTime(res, c.opts.RenewBefore)
}

// setSyncMode records push or polling, in the state and the SyncMode
// search attribute.
func (c *connection) setSyncMode(ctx workflow.Context, mode, reason string) {
	changed := c.s.Sync.Mode != mode
	c.s.Sync.Mode, c.s.Sync.PollReason = mode, reason
	if !changed {
		return
	}
	switch {
	case mode == SyncPolling && c.isMailbox() && (c.s.Mode == ModeServiceAccount || reason == legacyApplicationPollReason):
		c.log.Info("mailbox polls, as its access allows", "reason", reason)
	case mode == SyncPolling:
		c.log.Warn("connection polls: Graph cannot push to it", "reason", reason)
	}
	if err := c.upsertSyncMode(ctx, mode); err != nil {
		c.log.Error("upsert search attributes", "err", err)
	}
	c.showDetails(ctx)
}

// upsertSyncMode sets the SyncMode search attribute (a run since
// connection-versions-at-once: unless the workflow has it already).
func (c *connection) upsertSyncMode(ctx workflow.Context, mode string) error {
	updates := changedAttrs(ctx, []keyword{{SASyncMode, mode}}, c.atOnce)
	if len(updates) == 0 {
		return nil
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}

// renew extends the subscription; one Graph no longer has is recreated.
func (c *connection) renew(ctx workflow.Context) {
	c.s.Pending.Renew = false
	res, err := renewSubscription.run(ctx, RenewSubscriptionInput{
		ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), SubscriptionID: c.s.Sync.SubscriptionID, Lifetime: c.opts.SubscriptionLifetime,
	})
	if !c.still(StateActive) {
		return
	}
	if err != nil {
		if !c.onActivityError(ctx, err) {
			c.s.Sync.Subscribe.failed(workflow.Now(ctx))
		}
		return
	}
	c.s.Sync.Subscribe = Backoff{}
	if res.Gone {
		c.s.Pending.Resubscribe = true
		return
	}
	if res.PollReason != "" {
		// Graph no longer lets the app watch the mailbox (an application
		// access policy now keeps it out): polled, and subscribed to
		// again once its access is back.
		c.s.Pending.Sync = true
		c.setSyncMode(ctx, SyncPolling, res.PollReason)
		c.s.Sync.SubscriptionID = ""
		return
	}
	c.s.Sync.SubscriptionExpires, c.s.Sync.LastRenewal = res.Expiration, workflow.Now(ctx)
	c.s.Sync.SubscriptionRenewAt = renewalTime(res, c.opts.RenewBefore)
}

// localRoundTimeout bounds a live round run as a local activity; longer
// rounds go on as normal activities.
const localRoundTimeout = 5 * time.Second

// sync runs one delta round over the live folders. Notifications that
// arrive meanwhile set Pending.Sync again, so another round follows: bursts
// coalesce into rounds, never one round per notification.
func (c *connection) sync(ctx workflow.Context) {
	c.s.Pending.Sync = false
	started := workflow.Now(ctx)
	reanchor := c.s.Pending.Reanchor
	in := SyncFoldersInput{
		ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), UserID: c.s.UserID, StoreBodies: c.s.Settings.StoreBodies(),
		ContactFilter: c.s.Settings.ContactFilter, Bodies: c.s.Settings.Bodies, PageSize: c.opts.PageSize, Reanchor: reanchor,
	}
	if c.isMailbox() && c.s.Mode == ModeApplication {
		in.MailboxSettingsEvery = cmp.Or(c.opts.MailboxSettingsEvery, defaultMailboxSettingsEvery)
	}
	var res SyncFoldersResult
	var err error
	local := len(reanchor) == 0
	if local {
		// A round usually carries a message or two: run it as a local
		// activity, inside this workflow task, saving the trips through
		// the server's task queues that dominate push latency. A round
		// that fails or outlasts the short timeout (the pages it merged
		// stay merged, the cursors stay advanced) is retried as a normal
		// activity.
		res, err = syncFolders.runLocal(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: localRoundTimeout,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		}, in)
		if _, reauth := reauthError(err); err != nil && !reauth && !temporal.IsCanceledError(err) && c.s.State == StateActive {
			c.log.Info("a live round as a local activity failed; retrying it as an activity", "err", err)
			local = false
		}
	}
	if !local {
		res, err = syncFolders.run(ctx, in)
	}
	if !c.still(StateActive) {
		return
	}
	now := workflow.Now(ctx)
	if err != nil {
		c.s.Sync.LastError = err.Error()
		if !c.onActivityError(ctx, err) {
			c.s.Pending.Sync = true
			c.s.Sync.Backoff.failed(now)
		}
		return
	}
	// Folders asked for re-anchoring meanwhile stay pending.
	c.s.Pending.Reanchor = slices.DeleteFunc(c.s.Pending.Reanchor, func(f string) bool { return slices.Contains(reanchor, f) })
	if len(c.s.Pending.Reanchor) == 0 {
		c.s.Pending.Reanchor = nil
	}
	c.s.AccessLostTold = false // the mailbox was read: its access is back
	s := &c.s.Sync
	s.LastSync, s.LastError, s.Backoff = now, "", Backoff{}
	if s.Behind && !started.Before(s.BehindAsked) {
		s.Behind, s.BehindAsked = false, time.Time{} // caught up
	}
	s.Rounds++
	s.Upserted += res.Upserted
	s.Removed += res.Removed
	s.Reanchored += res.Reanchored
	s.GoneFolders += len(res.Gone)
	for _, f := range res.Gone {
		c.folderGone(ctx, f)
	}
}

// onChanges asks for a round; a catch-up after refused notifications also
// marks the mailbox behind until a round that starts after it has run.
func (c *connection) onChanges(ctx workflow.Context, sig ChangesSignal) {
	c.s.Pending.Sync = true
	if !sig.RefusedSince.IsZero() {
		c.s.Sync.Behind, c.s.Sync.BehindAsked = true, workflow.Now(ctx)
	}
}

// folderGone forgets a folder deleted at Microsoft (its mail was dropped
// with it) and tells the app.
func (c *connection) folderGone(ctx workflow.Context, f FolderRef) {
	c.log.Warn("a synced folder was deleted at Microsoft; dropped", "folder", f.ID, "name", f.Name)
	delete(c.s.Backfill.Folders, f.ID)
	if err := c.recordEvent(ctx, RecordEventInput{ConnectionID: c.credentialID(), MailboxID: c.mailboxID(),
		EventID: c.s.ID + ":folder_gone:" + f.ID, Type: "folder.removed",
		Data: map[string]any{"folder_id": f.ID, "name": f.Name}}); err != nil {
		c.log.Error("record folder.removed", "err", err)
	}
}

// refresh exercises the refresh token so a quiet connection never reaches
// Microsoft's 90-day inactivity limit.
func (c *connection) refresh(ctx workflow.Context) {
	res, err := refreshTokens.run(ctx, RefreshInput{ConnectionID: c.s.ID})
	if !c.still(StateActive) {
		return
	}
	if err != nil {
		c.onActivityError(ctx, err)
		return
	}
	c.s.AccessExpiry, c.s.LastRefresh = res.AccessExpiry, workflow.Now(ctx)
	if len(res.GrantedScopes) > 0 {
		c.s.GrantedScopes, c.s.Granted = res.GrantedScopes, res.Granted
	}
}

// reauthError is the error of an activity that failed because the tokens
// are dead, if err is one.
func reauthError(err error) (*temporal.ApplicationError, bool) {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == ErrReauthRequired {
		return appErr, true
	}
	return nil, false
}

// onActivityError moves the connection to reauth_required when the error
// says the tokens are dead (the app is told once, by the state's event),
// and logs other errors. A mailbox's workflow tells its connection, and
// moves to access_lost when the account can no longer open the mailbox.
// It reports whether the error was the tokens' or the access's.
func (c *connection) onActivityError(ctx workflow.Context, err error) bool {
	if _, ok := reauthError(err); ok {
		d, _ := errorDetail(err)
		if c.isApplication() {
			c.credentialRefused(ctx, d.Reason, d.Text)
			return true
		}
		if !c.isMailbox() {
			c.moveTo(ctx, StateReauthRequired, d.Reason, d.Text, nil)
			return true
		}
		c.onCredential(ctx, CredentialSignal{Dead: true})
		sctx, _ := workflow.NewDisconnectedContext(ctx)
		if err := workflow.SignalExternalWorkflow(sctx, ConnectionWorkflowID(c.s.ConnectionID), "", SignalCredential,
			CredentialSignal{Dead: true, Reason: d.Reason, Text: d.Text}).Get(sctx, nil); err != nil {
			c.log.Warn("could not tell the connection its credential is dead", "err", err)
		}
		return true
	}
	var appErr *temporal.ApplicationError
	if c.isMailbox() && errors.As(err, &appErr) && appErr.Type() == ErrMailboxUnreachable {
		d, _ := errorDetail(err)
		queued := len(c.s.Registry.Events)
		if c.moveTo(ctx, StateAccessLost, cmp.Or(d.Reason, ReasonMailboxUnreachable), d.Text, map[string]any{"mailbox_id": c.s.ID, "address": c.s.Mailbox}) &&
			c.s.AccessLostTold && len(c.s.Registry.Events) > queued {
			// Still the loss the app was told of (the mailbox resumed after a
			// new sign-in without its access back): not told again.
			c.s.Registry.Events = c.s.Registry.Events[:queued]
		}
		c.s.AccessLostTold = true
		return true
	}
	if !temporal.IsCanceledError(err) {
		c.log.Warn("activity failed", "err", err)
	}
	return false
}

// startBackfill starts a backfill of what the settings ask and the store
// lacks; a goroutine waits for it and books the outcome.
func (c *connection) startBackfill(ctx workflow.Context) {
	b := &c.s.Backfill
	b.Runs++
	b.Running = true
	b.Target = c.backfillTarget(ctx)
	b.Started = workflow.Now(ctx)
	b.LastError = ""
	b.Folders = map[string]FolderProgress{}
	roots := slices.Clone(c.s.Settings.Folders)
	in := BackfillInput{
		ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), ParentID: workflow.GetInfo(ctx).WorkflowExecution.ID, Run: b.Runs, UserID: c.s.UserID,
		Roots: roots, WindowStart: b.Target, StoreBodies: c.s.Settings.StoreBodies(), ContactFilter: c.s.Settings.ContactFilter, Bodies: c.s.Settings.Bodies,
		PageSize: c.opts.PageSize, Concurrency: c.opts.FolderConcurrency, HeartbeatTimeout: c.opts.HeartbeatTimeout,
	}
	// Cancelling cctx (disconnect) cancels the backfill, and the workflow
	// waits until it has ended.
	cctx, cancel := workflow.WithCancel(ctx)
	c.cancelBackfill = cancel
	// A backfill begins with one activity that discovers the folders and
	// pages them all for one budget; only what is left then goes to a
	// child, which tells its progress page by page (mailbox-backfill-inline
	// for an attached mailbox, connection-backfill-inline for a
	// connection's own). A mailbox of a few hundred messages so costs two
	// workflow tasks instead of a child's dozen and its signals.
	if c.backfillsInline(ctx) {
		// Only the disconnect saga cancels it, and the outcome of a
		// cancelled backfill is booked without a step of its own.
		workflow.Go(cctx, func(gctx workflow.Context) {
			res, err := c.backfillInline(gctx, in)
			c.bookBackfill(gctx, roots, res, err)
		})
		return
	}
	child := c.backfillChild(cctx, in)
	workflow.Go(ctx, func(gctx workflow.Context) {
		var res BackfillResult
		err := child.Get(gctx, &res)
		c.bookBackfill(gctx, roots, res, err)
	})
}

// backfillsInline says whether a backfill begins as one activity: an
// attached mailbox's since mailbox-backfill-inline, a connection's own
// since connection-backfill-inline.
func (c *connection) backfillsInline(ctx workflow.Context) bool {
	if c.atOnce {
		return true
	}
	if c.isMailbox() {
		return workflow.GetVersion(ctx, "mailbox-backfill-inline", workflow.DefaultVersion, 1) == 1
	}
	return workflow.GetVersion(ctx, "connection-backfill-inline", workflow.DefaultVersion, 1) == 1
}

// backfillChild starts the backfill child on the parent's task queue.
func (c *connection) backfillChild(ctx workflow.Context, in BackfillInput) workflow.ChildWorkflowFuture {
	ctx = workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:          c.backfillWorkflowID(in.Run),
		WaitForCancellation: true,
	})
	return workflow.ExecuteChildWorkflow(ctx, Backfill, in)
}

// backfillInline runs a mailbox's backfill as one BackfillMailbox
// activity, and what that left undone as a child, which resumes each
// folder from the cursor its last page committed.
func (c *connection) backfillInline(ctx workflow.Context, in BackfillInput) (BackfillResult, error) {
	first, err := backfillMailbox.with(backfillPage(in.HeartbeatTimeout)).run(ctx, BackfillMailboxInput{BackfillInput: in, Budget: inlineBudget})
	if err != nil || first.Done {
		return first.BackfillResult, err
	}
	c.applyProgress(BackfillProgress{Run: in.Run, Updates: first.Folders})
	in.Fetched = map[string]int64{}
	for _, f := range first.Folders {
		in.Fetched[f.ID] = f.Fetched
	}
	var res BackfillResult
	if err := c.backfillChild(ctx, in).Get(ctx, &res); err != nil {
		return res, err
	}
	// The folders deleted at Microsoft while the activity ran are gone
	// from the store, and so from what the child saw.
	res.Gone = append(first.Gone, res.Gone...)
	return res, nil
}

// BackfillCompletedData is the data of a backfill.completed event: the
// window covered, the messages fetched, the run, the mailbox (an attached
// one's) and the root folders it lacks.
func BackfillCompletedData(mailboxID string, covered time.Time, fetched int64, run int, missing []string) map[string]any {
	data := map[string]any{"covered_from": covered.UTC().Format(time.RFC3339), "fetched": fetched, "run": run}
	if len(missing) > 0 {
		data["missing_folders"] = missing
	}
	if mailboxID != "" {
		data["mailbox_id"] = mailboxID
	}
	return data
}

// bookBackfill books a backfill's outcome: its failure and backoff, or
// the window covered, each folder's progress, the folders gone, and the
// backfill.completed event.
func (c *connection) bookBackfill(ctx workflow.Context, roots []string, res BackfillResult, err error) {
	b := &c.s.Backfill
	// Running stays true until the outcome is booked, so the workflow
	// does not continue as new under this goroutine.
	defer func() { b.Running, c.cancelBackfill = false, nil }()
	if err != nil {
		b.LastError = err.Error()
		if c.s.State == StateActive && !c.onActivityError(ctx, err) {
			b.Backoff.failed(workflow.Now(ctx))
		}
		return
	}
	if b.Covered.IsZero() || b.Target.Before(b.Covered) || !sameFolders(b.Roots, roots) {
		b.Covered = b.Target
	}
	b.Roots, b.Missing, b.Completed, b.Backoff = roots, res.Missing, workflow.Now(ctx), Backoff{}
	b.Folders = map[string]FolderProgress{}
	var fetched int64
	for _, f := range res.Folders {
		b.Folders[f.ID] = f
		fetched += f.Fetched
	}
	for _, id := range res.Gone {
		c.folderGone(ctx, FolderRef{ID: id})
	}
	if c.s.State != StateActive {
		return
	}
	if err := c.recordEvent(ctx, RecordEventInput{
		ConnectionID: c.credentialID(), MailboxID: c.mailboxID(), EventID: fmt.Sprintf("%s:backfill:%d", c.s.ID, b.Runs), Type: "backfill.completed",
		Data: BackfillCompletedData(c.mailboxID(), b.Covered, fetched, b.Runs, res.Missing),
	}); err != nil {
		c.log.Error("record backfill.completed", "err", err)
	}
}

func (c *connection) canSuggested(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= c.opts.ContinueAsNewAfter
}

func (c *connection) shouldContinueAsNew(ctx workflow.Context) bool {
	return c.canSuggested(ctx) && !c.s.Backfill.Running && !c.prefillRunning() && !c.applying && c.s.State != StateConnecting && c.s.State != StateDisconnecting
}

// continueAsNew starts a fresh history with the same state, after every
// handler has finished and no signal is left unread.
func (c *connection) continueAsNew(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	c.drainSignals(ctx)
	st := c.s
	if c.isMailbox() {
		return workflow.NewContinueAsNewError(ctx, Mailbox, MailboxInput{ID: st.ID, ConnectionID: st.ConnectionID, Options: c.opts, State: &st})
	}
	return workflow.NewContinueAsNewError(ctx, Connection, ConnectionInput{
		ID: st.ID, OrgID: st.OrgID, OwnerID: st.OwnerID, Mode: st.Mode, Settings: st.Settings, Options: c.opts, State: &st,
	})
}

// drainSignals applies every signal not yet read, so the state carried
// across continue-as-new holds them all (as pending work).
func (c *connection) drainSignals(ctx workflow.Context) {
	drain(c.progress, c.applyProgress)
	drain(c.changes, func(sig ChangesSignal) { c.onChanges(ctx, sig) })
	drain(c.lifecycle, c.onLifecycle)
	drain(c.credential, func(sig CredentialSignal) { c.onCredential(ctx, sig) })
	drain(c.ended, func(e MailboxEnded) { delete(c.s.Mailboxes, e.MailboxID) })
	for c.contacts.ReceiveAsync(nil) {
		c.s.Pending.Contacts = true
	}
}

// drain applies every signal waiting on ch, in order, without blocking.
func drain[T any](ch workflow.ReceiveChannel, apply func(T)) {
	for {
		var v T
		if !ch.ReceiveAsync(&v) {
			return
		}
		apply(v)
	}
}

// backfillWorkflowID is the ID of the workflow's n-th backfill child.
func (c *connection) backfillWorkflowID(n int) string {
	if c.isMailbox() {
		return fmt.Sprintf("%s/backfill/%d", MailboxWorkflowID(c.s.ID), n)
	}
	return BackfillWorkflowID(c.s.ID, n)
}
