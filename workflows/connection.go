package workflows

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// connection is the running state of a Connection workflow.
type connection struct {
	s    ConnectionState
	opts Options
	log  log.Logger
	// recorded is the state last mirrored into the registry.
	recorded string
	// retryBackfillAt delays a failed backfill's next attempt.
	retryBackfillAt time.Time
	progress        workflow.ReceiveChannel
	changes         workflow.ReceiveChannel
	lifecycle       workflow.ReceiveChannel
	retrySyncAt     time.Time
	// cancelBackfill cancels the running backfill child (set while one
	// runs; a run never continues as new under a running backfill).
	cancelBackfill workflow.CancelFunc
}

// Connection is the entity workflow of one connected mailbox: consent,
// token upkeep, backfill and (later) live sync, re-auth and disconnect.
func Connection(ctx workflow.Context, in ConnectionInput) (ConnectionResult, error) {
	c, err := newConnection(ctx, in)
	if err != nil {
		return ConnectionResult{}, err
	}
	return c.run(ctx)
}

var refPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,64}$`)

func newConnection(ctx workflow.Context, in ConnectionInput) (*connection, error) {
	c := &connection{opts: in.Options.withDefaults(), log: workflow.GetLogger(ctx)}
	if in.State != nil {
		c.s = *in.State
		c.s.Runs++
		c.recorded = c.s.State
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
		c.s = ConnectionState{ID: in.ID, OrgID: in.OrgID, OwnerID: in.OwnerID, Mode: mode, Settings: in.Settings.WithDefaults(),
			State: StatePendingConsent, Since: workflow.Now(ctx)}
		c.recorded = StatePendingConsent // the registry row starts so
	}
	c.log = log.With(c.log, "connection", c.s.ID)

	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return c.status(ctx), nil }); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateConsent, c.onConsent,
		workflow.UpdateHandlerOptions{Validator: c.validateConsent}); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSettings, c.onSettings,
		workflow.UpdateHandlerOptions{Validator: c.validateSettings}); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDisconnect, c.onDisconnect,
		workflow.UpdateHandlerOptions{Validator: c.validateDisconnect}); err != nil {
		return nil, err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateResync, func(ctx workflow.Context, in ResyncInput) (Status, error) {
		c.s.Pending.Sync = true
		for _, f := range in.Folders {
			if !slices.Contains(c.s.Pending.Reanchor, f) {
				c.s.Pending.Reanchor = append(c.s.Pending.Reanchor, f)
			}
		}
		return c.status(ctx), nil
	}, workflow.UpdateHandlerOptions{Validator: func(in ResyncInput) error {
		if c.s.State != StateActive {
			return fmt.Errorf("only an active connection can resync; this one is %s", c.s.State)
		}
		if len(in.Folders) > 0 && !c.live() {
			return errors.New("the first backfill has not finished; there is nothing to re-anchor yet")
		}
		for _, f := range in.Folders {
			if f == "" || len(f) > 512 {
				return errors.New("a folder to re-anchor is empty or too long")
			}
		}
		return nil
	}}); err != nil {
		return nil, err
	}
	c.progress = workflow.GetSignalChannel(ctx, SignalBackfillProgress)
	c.changes = workflow.GetSignalChannel(ctx, SignalChanges)
	c.lifecycle = workflow.GetSignalChannel(ctx, SignalLifecycle)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(c.progress, func(ch workflow.ReceiveChannel, _ bool) {
				var p BackfillProgress
				ch.Receive(ctx, &p)
				c.applyProgress(p)
			})
			sel.AddReceive(c.changes, func(ch workflow.ReceiveChannel, _ bool) {
				ch.Receive(ctx, nil)
				c.s.Pending.Sync = true
			})
			sel.AddReceive(c.lifecycle, func(ch workflow.ReceiveChannel, _ bool) {
				var l LifecycleSignal
				ch.Receive(ctx, &l)
				c.onLifecycle(l)
			})
			sel.Select(ctx)
		}
	})
	if p := c.s.Pending; p.Sync || p.Renew || p.Resubscribe || len(p.Reanchor) > 0 {
		c.log.Info("resuming work signalled before continue-as-new", "pending", c.s.Pending)
	}
	if err := c.upsertSearchAttributes(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *connection) upsertSearchAttributes(ctx workflow.Context) error {
	updates := []temporal.SearchAttributeUpdate{
		SAConnectionState.ValueSet(c.s.State),
		SAConnectionMode.ValueSet(c.s.Mode),
	}
	if c.s.TenantID != "" {
		updates = append(updates, SATenantID.ValueSet(c.s.TenantID))
	}
	if c.s.Mailbox != "" {
		updates = append(updates, SAMailbox.ValueSet(c.s.Mailbox))
	}
	// The sync mode rides along with every upsert, so a connection that
	// was already live before the attribute existed gets it too (at its
	// next generation or state change), not only at its next mode change.
	if c.s.Sync.Mode != "" && workflow.GetVersion(ctx, "sync-mode-every-upsert", workflow.DefaultVersion, 1) == 1 {
		updates = append(updates, SASyncMode.ValueSet(c.s.Sync.Mode))
	}
	return workflow.UpsertTypedSearchAttributes(ctx, updates...)
}

// setState moves the connection to a state, with a reason in words.
func (c *connection) setState(ctx workflow.Context, state, reason, text string) {
	if c.s.State != state {
		c.log.Info("connection state", "from", c.s.State, "to", state, "reason", reason)
		c.s.State, c.s.Since = state, workflow.Now(ctx)
	}
	c.s.Reason, c.s.ReasonText = reason, text
	if err := c.upsertSearchAttributes(ctx); err != nil {
		c.log.Error("upsert search attributes", "err", err)
	}
}

func (c *connection) validateConsent(in ConsentInput) error {
	switch {
	case c.s.State != StatePendingConsent && c.s.State != StateReauthRequired:
		return fmt.Errorf("the connection is %s and is not waiting for consent", c.s.State)
	case (in.Ref == "") == (in.Reason == ""):
		return errors.New("give either a consent reference or a refusal reason")
	case in.Ref != "" && !refPattern.MatchString(in.Ref):
		return errors.New("the consent reference is malformed")
	}
	return nil
}

// onConsent hands a consent over: a reference to the code in Vault (then
// waits until it has been exchanged), or a refusal.
func (c *connection) onConsent(ctx workflow.Context, in ConsentInput) (Status, error) {
	if in.Reason != "" {
		c.setState(ctx, c.s.State, in.Reason, in.ReasonText)
		return c.status(ctx), nil
	}
	resume := c.s.State == StateReauthRequired
	c.s.ConsentRef = in.Ref
	c.setState(ctx, StateConnecting, "", "")
	if resume {
		c.s.Reason = "reauthorizing"
	}
	if err := workflow.Await(ctx, func() bool { return c.s.State != StateConnecting }); err != nil {
		return Status{}, err
	}
	return c.status(ctx), nil
}

func (c *connection) validateSettings(in Settings) error {
	if c.s.State == StateDisconnecting || c.s.State == StateDisconnected {
		return fmt.Errorf("the connection is %s", c.s.State)
	}
	return in.Validate()
}

// onSettings applies new settings; a wider window backfills the gap.
func (c *connection) onSettings(ctx workflow.Context, in Settings) (Status, error) {
	in = in.WithDefaults()
	c.s.Settings = in
	return c.status(ctx), nil
}

// onLifecycle reacts to Graph's lifecycle events (facts §4.4): a removed
// subscription is recreated, reauthorization renews, and after missed
// notifications a delta round catches up. Each also syncs, to be safe.
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
		c.setState(ctx, StateDisconnecting, "disconnect_requested", "The connection is being disconnected.")
	}
	return c.status(ctx), nil
}

func (c *connection) applyProgress(p BackfillProgress) {
	if c.s.Backfill.Folders == nil {
		c.s.Backfill.Folders = map[string]FolderProgress{}
	}
	c.s.Backfill.Folders[p.Folder.ID] = p.Folder
}

func (c *connection) status(ctx workflow.Context) Status {
	st := Status{ConnectionState: c.s, HistoryLen: workflow.GetInfo(ctx).GetCurrentHistoryLength()}
	st.NextAction, st.NextActionAt = c.nextAction(ctx)
	return st
}

func (c *connection) nextAction(ctx workflow.Context) (string, time.Time) {
	switch c.s.State {
	case StatePendingConsent:
		return "waiting for the user's consent", time.Time{}
	case StateConnecting:
		return "exchanging the authorization code", time.Time{}
	case StateReauthRequired:
		return "waiting for the user to sign in again", time.Time{}
	case StateActive:
		if c.s.Backfill.Running {
			return "backfilling", time.Time{}
		}
		if c.needsBackfill(ctx) {
			return "starting a backfill", c.retryBackfillAt
		}
		if c.live() {
			return "next delta round", c.nextSyncAt()
		}
		return "keeping the refresh token alive", c.keepAliveAt()
	case StateDisconnecting:
		return "disconnecting: " + c.s.DisconnectStep, time.Time{}
	}
	return "", time.Time{}
}

func (c *connection) keepAliveAt() time.Time {
	last := c.s.LastRefresh
	if last.IsZero() {
		last = c.s.Since
	}
	return last.Add(c.opts.KeepAliveEvery)
}

// backfillTarget is the start of the window the settings ask for.
func (c *connection) backfillTarget(ctx workflow.Context) time.Time {
	return workflow.Now(ctx).Add(-time.Duration(c.s.Settings.BackfillDays) * 24 * time.Hour).Truncate(time.Second)
}

func (c *connection) needsBackfill(ctx workflow.Context) bool {
	if !c.s.Granted.Read || c.s.Backfill.Running {
		return false
	}
	b := c.s.Backfill
	if b.Covered.IsZero() {
		return true
	}
	// A wider window: the new start is more than a day before the covered one.
	return c.backfillTarget(ctx).Before(b.Covered.Add(-24 * time.Hour))
}

func (c *connection) run(ctx workflow.Context) (ConnectionResult, error) {
	for {
		c.recordState(ctx)
		if c.shouldContinueAsNew(ctx) {
			return c.continueAsNew(ctx)
		}
		switch c.s.State {
		case StatePendingConsent, StateReauthRequired:
			state := c.s.State
			if err := workflow.Await(ctx, func() bool { return c.s.State != state || c.canSuggested(ctx) }); err != nil {
				return ConnectionResult{}, err
			}
		case StateConnecting:
			c.exchange(ctx)
		case StateActive:
			if err := c.active(ctx); err != nil {
				return ConnectionResult{}, err
			}
		case StateDisconnecting:
			c.disconnect(ctx)
		case StateDisconnected:
			return ConnectionResult{State: c.s.State, Reason: c.s.Reason}, nil
		default:
			return ConnectionResult{}, fmt.Errorf("connection in unknown state %q", c.s.State)
		}
	}
}

// recordState mirrors a changed state into the registry. The transient
// connecting state is not mirrored, and ExchangeCode records active itself.
func (c *connection) recordState(ctx workflow.Context) {
	if c.recorded == c.s.State || c.s.State == StateConnecting {
		return
	}
	err := workflow.ExecuteActivity(withLocalRetries(ctx, time.Minute), ActivityRecordState,
		RecordStateInput{ConnectionID: c.s.ID, State: c.s.State, Mode: c.s.Mode}).Get(ctx, nil)
	if err != nil {
		c.log.Error("record state", "err", err)
		return
	}
	c.recorded = c.s.State
}

// exchange turns the consent reference into tokens and an identity.
func (c *connection) exchange(ctx workflow.Context) {
	reauth := c.s.Reason == "reauthorizing"
	in := ExchangeCodeInput{ConnectionID: c.s.ID, Ref: c.s.ConsentRef}
	if reauth {
		in.ExpectUserID = c.s.UserID
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10,
			NonRetryableErrorTypes: []string{ErrConsentFailed, ErrMailboxTaken}},
	})
	var res ExchangeCodeResult
	err := workflow.ExecuteActivity(actx, ActivityExchangeCode, in).Get(ctx, &res)
	c.s.ConsentRef = ""
	back := StatePendingConsent
	if reauth {
		back = StateReauthRequired
	}
	if err != nil {
		reason, text := "consent_failed", "The sign-in could not be completed; try again."
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			var detail struct{ Reason, Text string }
			if appErr.HasDetails() && appErr.Details(&detail) == nil && detail.Reason != "" {
				reason, text = detail.Reason, detail.Text
			}
			if appErr.Type() == ErrMailboxTaken {
				reason, text = "mailbox_already_connected", "This mailbox is already connected; disconnect it first or connect another account."
			}
		}
		c.setState(ctx, back, reason, text)
		return
	}
	c.s.UserID, c.s.Mailbox, c.s.TenantID, c.s.DisplayName = res.UserID, res.Mailbox, res.TenantID, res.DisplayName
	c.s.GrantedScopes = res.GrantedScopes
	c.s.Granted = grantedFeatures(res.GrantedScopes)
	c.s.AccessExpiry, c.s.LastRefresh = res.AccessExpiry, workflow.Now(ctx)
	text := ""
	if c.s.Settings.Features.Read && !c.s.Granted.Read {
		text = "The user granted sending only: the connection is send-only and syncs no mail."
	}
	c.setState(ctx, StateActive, "", text)
	c.recorded = StateActive // ExchangeCode wrote the registry row
}

// grantedFeatures mirrors identity.FeaturesOf without importing it.
func grantedFeatures(scopes []string) Features {
	has := func(names ...string) bool {
		return slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(names, s) })
	}
	return Features{Read: has("Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"), Send: has("Mail.Send")}
}

// active runs one turn of an active connection: start what is due, then
// sleep until something changes or the next deadline.
func (c *connection) active(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	if c.needsBackfill(ctx) && !now.Before(c.retryBackfillAt) {
		c.startBackfill(ctx)
	}
	if c.live() {
		if c.s.Sync.Mode == "" || c.s.Pending.Resubscribe {
			c.subscribe(ctx)
			return nil
		}
		if c.s.Sync.Mode == SyncPush && (c.s.Pending.Renew || !now.Before(c.s.Sync.SubscriptionExpires.Add(-c.opts.RenewBefore))) {
			c.renew(ctx)
			return nil
		}
		if (c.s.Pending.Sync || !now.Before(c.nextSyncAt())) && !now.Before(c.retrySyncAt) {
			c.sync(ctx)
			return nil
		}
	}
	if !now.Before(c.keepAliveAt()) {
		c.refresh(ctx)
		return nil
	}
	wake := c.keepAliveAt()
	for _, at := range []time.Time{c.retryBackfillAt, c.retrySyncAt} {
		if at.After(now) && at.Before(wake) {
			wake = at
		}
	}
	if c.live() {
		if at := c.nextSyncAt(); at.Before(wake) {
			wake = at
		}
		if c.s.Sync.Mode == SyncPush {
			if at := c.s.Sync.SubscriptionExpires.Add(-c.opts.RenewBefore); at.Before(wake) {
				wake = at
			}
		}
	}
	if !wake.After(now) {
		wake = now.Add(time.Second)
	}
	state, running, settings := c.s.State, c.s.Backfill.Running, c.s.Settings.BackfillDays
	_, err := workflow.AwaitWithTimeout(ctx, wake.Sub(now), func() bool {
		return c.s.State != state || c.s.Backfill.Running != running || c.s.Settings.BackfillDays != settings ||
			c.s.Pending.Sync || c.s.Pending.Renew || c.s.Pending.Resubscribe || c.canSuggested(ctx)
	})
	return err
}

// live says whether the connection syncs: it reads mail and its folders
// have their delta anchors (the first backfill is done).
func (c *connection) live() bool {
	return c.s.Granted.Read && !c.s.Backfill.Covered.IsZero()
}

// nextSyncAt is when the next round runs without notifications: the
// reconciliation of a pushed connection, or the poll of one that is not.
func (c *connection) nextSyncAt() time.Time {
	every := c.opts.ReconcileEvery
	if c.s.Sync.Mode == SyncPolling {
		every = c.opts.PollEvery
		if c.s.Settings.PollMinutes > 0 {
			every = time.Duration(c.s.Settings.PollMinutes) * time.Minute
		}
	}
	last := c.s.Sync.LastSync
	if last.IsZero() {
		last = c.s.Backfill.Completed
	}
	return last.Add(every)
}

// graphActivity is the options of activities that call Graph: retried
// until done, except when the tokens are dead.
func graphActivity(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: []string{ErrReauthRequired}},
	})
}

// subscribe creates the connection's subscription, or switches to polling
// when Graph cannot push to it (and says why).
func (c *connection) subscribe(ctx workflow.Context) {
	replace := c.s.Pending.Resubscribe || c.s.Sync.SubscriptionID != ""
	c.s.Pending.Resubscribe = false
	if c.opts.NotificationURL == "" {
		c.setSyncMode(ctx, SyncPolling, "no notification URL is configured")
		return
	}
	var res SubscriptionResult
	err := workflow.ExecuteActivity(graphActivity(ctx, 2*time.Minute), ActivityEnsureSubscription, EnsureSubscriptionInput{
		ConnectionID: c.s.ID, UserID: c.s.UserID, NotificationURL: c.opts.NotificationURL, LifecycleURL: c.opts.LifecycleURL,
		Lifetime: c.opts.SubscriptionLifetime, Replace: replace,
	}).Get(ctx, &res)
	if err != nil {
		c.onActivityError(ctx, err)
		return
	}
	c.s.Pending.Sync = true // catch up on what happened while unsubscribed
	if res.PollReason != "" {
		c.setSyncMode(ctx, SyncPolling, res.PollReason)
		c.s.Sync.SubscriptionID = ""
		return
	}
	c.setSyncMode(ctx, SyncPush, "")
	c.s.Sync.SubscriptionID, c.s.Sync.SubscriptionExpires = res.ID, res.Expiration
}

// setSyncMode records push or polling, in the state and (for histories
// that know it) in the SyncMode search attribute.
func (c *connection) setSyncMode(ctx workflow.Context, mode, reason string) {
	changed := c.s.Sync.Mode != mode
	c.s.Sync.Mode, c.s.Sync.PollReason = mode, reason
	if !changed {
		return
	}
	if mode == SyncPolling {
		c.log.Warn("connection polls: Graph cannot push to it", "reason", reason)
	}
	if workflow.GetVersion(ctx, "sync-mode-search-attribute", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, SASyncMode.ValueSet(mode)); err != nil {
		c.log.Error("upsert search attributes", "err", err)
	}
}

// renew extends the subscription; one Graph no longer has is recreated.
func (c *connection) renew(ctx workflow.Context) {
	c.s.Pending.Renew = false
	var res SubscriptionResult
	err := workflow.ExecuteActivity(graphActivity(ctx, time.Minute), ActivityRenewSubscription, RenewSubscriptionInput{
		ConnectionID: c.s.ID, SubscriptionID: c.s.Sync.SubscriptionID, Lifetime: c.opts.SubscriptionLifetime,
	}).Get(ctx, &res)
	if err != nil {
		c.onActivityError(ctx, err)
		return
	}
	if res.Gone {
		c.s.Pending.Resubscribe = true
		return
	}
	c.s.Sync.SubscriptionExpires = res.Expiration
}

// sync runs one delta round over the live folders. Notifications that
// arrive meanwhile set Pending.Sync again, so another round follows: bursts
// coalesce into rounds, never one round per notification.
func (c *connection) sync(ctx workflow.Context) {
	c.s.Pending.Sync = false
	reanchor := c.s.Pending.Reanchor
	var res SyncFoldersResult
	in := SyncFoldersInput{
		ConnectionID: c.s.ID, UserID: c.s.UserID, WindowStart: c.s.Backfill.Covered, StoreBodies: c.s.Settings.StoreBodies, PageSize: c.opts.PageSize,
		Reanchor: reanchor,
	}
	var err error
	local := len(reanchor) == 0 && workflow.GetVersion(ctx, "live-round-local", workflow.DefaultVersion, 1) == 1
	if local {
		// A round usually carries a message or two: run it as a local
		// activity, inside this workflow task, saving the trips through
		// the server's task queues that dominate push latency. A round
		// that fails or outlasts the short timeout (the pages it merged
		// stay merged, the cursors stay advanced) is retried as a normal
		// activity.
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: localRoundTimeout,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
		})
		err = workflow.ExecuteLocalActivity(lctx, ActivitySyncFolders, in).Get(ctx, &res)
		if _, reauth := reauthError(err); err != nil && !reauth {
			c.log.Info("a live round as a local activity failed; retrying it as an activity", "err", err)
			local = false
		}
	}
	if !local {
		err = workflow.ExecuteActivity(graphActivity(ctx, 10*time.Minute), ActivitySyncFolders, in).Get(ctx, &res)
	}
	now := workflow.Now(ctx)
	if err != nil {
		c.s.Sync.LastError = err.Error()
		if !c.onActivityError(ctx, err) {
			c.s.Pending.Sync, c.retrySyncAt = true, now.Add(time.Minute)
		}
		return
	}
	// Folders asked for re-anchoring meanwhile stay pending.
	c.s.Pending.Reanchor = slices.DeleteFunc(c.s.Pending.Reanchor, func(f string) bool { return slices.Contains(reanchor, f) })
	if len(c.s.Pending.Reanchor) == 0 {
		c.s.Pending.Reanchor = nil
	}
	s := &c.s.Sync
	s.LastSync, s.LastError = now, ""
	s.Rounds++
	s.Upserted += res.Upserted
	s.Removed += res.Removed
	s.Reanchored += res.Reanchored
}

// disconnect runs the disconnect saga; every step is retried until it is
// done, and the step reached is visible in the status.
func (c *connection) disconnect(ctx workflow.Context) {
	forever := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute},
	})
	step := func(name, activity string, arg any) {
		c.s.DisconnectStep = name
		if err := workflow.ExecuteActivity(forever, activity, arg).Get(ctx, nil); err != nil {
			c.log.Error("disconnect step failed", "step", name, "err", err)
		}
	}
	if c.s.Backfill.Running {
		c.s.DisconnectStep = "cancelling the backfill"
		if c.cancelBackfill != nil {
			c.cancelBackfill()
		} else {
			_ = workflow.RequestCancelExternalWorkflow(ctx, BackfillWorkflowID(c.s.ID, c.s.Backfill.Runs), "").Get(ctx, nil)
		}
		_ = workflow.Await(ctx, func() bool { return !c.s.Backfill.Running })
	}
	ref := ConnectionRef{ConnectionID: c.s.ID}
	step("deleting subscriptions", ActivityDeleteSubscriptions, ref)
	step("purging secrets", ActivityPurgeSecrets, ref)
	step("applying the retention policy", ActivityApplyRetention, RetentionInput{ConnectionID: c.s.ID, Policy: c.s.Settings.Retention})
	step("telling the app", ActivityRecordEvent, RecordEventInput{ConnectionID: c.s.ID, EventID: c.s.ID + ":disconnected", Type: "connection.disconnected",
		Data: map[string]any{"mailbox": c.s.Mailbox, "retention": c.s.Settings.Retention}})
	c.s.Sync = SyncState{}
	c.s.DisconnectStep = "done"
	if workflow.GetVersion(ctx, "disconnect-registry-first", workflow.DefaultVersion, 1) != workflow.DefaultVersion {
		// The registry says disconnected before the status does, so an app
		// that sees the status may connect the user again at once.
		step("recording the end", ActivityRecordState, RecordStateInput{ConnectionID: c.s.ID, State: StateDisconnected, Mode: c.s.Mode})
		c.recorded = StateDisconnected
	}
	c.setState(ctx, StateDisconnected, "disconnected", "The connection was disconnected.")
	c.recordState(ctx)
}

// refresh exercises the refresh token so a quiet connection never reaches
// Microsoft's 90-day inactivity limit.
func (c *connection) refresh(ctx workflow.Context) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 10 * time.Minute,
			NonRetryableErrorTypes: []string{ErrReauthRequired}},
	})
	var res RefreshResult
	err := workflow.ExecuteActivity(actx, ActivityRefreshTokens, RefreshInput{ConnectionID: c.s.ID}).Get(ctx, &res)
	if err != nil {
		c.onActivityError(ctx, err)
		return
	}
	c.s.AccessExpiry, c.s.LastRefresh = res.AccessExpiry, workflow.Now(ctx)
	if len(res.GrantedScopes) > 0 {
		c.s.GrantedScopes, c.s.Granted = res.GrantedScopes, grantedFeatures(res.GrantedScopes)
	}
}

// localRoundTimeout bounds a live round run as a local activity; longer
// rounds go on as normal activities.
const localRoundTimeout = 5 * time.Second

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
// says the tokens are dead (and says so), and logs other errors.
func (c *connection) onActivityError(ctx workflow.Context, err error) bool {
	if appErr, ok := reauthError(err); ok {
		var detail struct{ Reason, Text string }
		if appErr.HasDetails() {
			_ = appErr.Details(&detail)
		}
		c.setState(ctx, StateReauthRequired, detail.Reason, detail.Text)
		// Tell the app once per outage (the event ID is stable).
		_ = workflow.ExecuteActivity(withLocalRetries(ctx, time.Minute), ActivityRecordEvent, RecordEventInput{
			ConnectionID: c.s.ID, EventID: fmt.Sprintf("%s:reauth:%d", c.s.ID, c.s.Since.UnixNano()), Type: "connection.reauth_required",
			Data: map[string]any{"reason": detail.Reason, "text": detail.Text},
		}).Get(ctx, nil)
		return true
	}
	c.log.Warn("activity failed", "err", err)
	return false
}

func (c *connection) startBackfill(ctx workflow.Context) {
	b := &c.s.Backfill
	b.Runs++
	b.Running = true
	b.Target = c.backfillTarget(ctx)
	b.LastError = ""
	in := BackfillInput{
		ConnectionID: c.s.ID, ParentID: workflow.GetInfo(ctx).WorkflowExecution.ID, UserID: c.s.UserID,
		Roots: c.s.Settings.Folders, WindowStart: b.Target, PreviousStart: b.Covered, StoreBodies: c.s.Settings.StoreBodies,
		PageSize: c.opts.PageSize, Concurrency: c.opts.FolderConcurrency, HeartbeatTimeout: c.opts.HeartbeatTimeout,
	}
	// The child runs on the parent's task queue; cancelling its context
	// cancels it (disconnect).
	cctx, cancel := workflow.WithCancel(ctx)
	c.cancelBackfill = cancel
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID:        BackfillWorkflowID(c.s.ID, b.Runs),
		ParentClosePolicy: enums.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	})
	fut := workflow.ExecuteChildWorkflow(cctx, Backfill, in)
	workflow.Go(ctx, func(gctx workflow.Context) {
		var res BackfillResult
		err := fut.Get(gctx, &res)
		b := &c.s.Backfill
		// Running stays true until the completion is recorded, so the
		// workflow does not continue as new under this goroutine.
		defer func() { b.Running = false }()
		if err != nil {
			if workflow.GetVersion(gctx, "backfill-error-keeps-running", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
				b.Running = false // before: the workflow could continue as new while the reauth event was pending
			}
			b.LastError = err.Error()
			if !c.onActivityError(gctx, err) {
				c.retryBackfillAt = workflow.Now(gctx).Add(time.Minute)
			}
			return
		}
		b.Covered, b.Completed = b.Target, workflow.Now(gctx)
		var fetched int64
		for _, f := range res.Folders {
			c.applyProgress(BackfillProgress{Folder: f})
			fetched += f.Fetched
		}
		if workflow.GetVersion(gctx, "backfill-completed-event", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
			return
		}
		err = workflow.ExecuteActivity(withLocalRetries(gctx, time.Minute), ActivityRecordEvent, RecordEventInput{
			ConnectionID: c.s.ID, EventID: fmt.Sprintf("%s:backfill:%d", c.s.ID, b.Runs), Type: "backfill.completed",
			Data: map[string]any{"covered_from": b.Covered.UTC().Format(time.RFC3339), "fetched": fetched, "run": b.Runs},
		}).Get(gctx, nil)
		if err != nil {
			c.log.Error("record backfill.completed", "err", err)
		}
	})
}

func (c *connection) canSuggested(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= c.opts.ContinueAsNewAfter
}

func (c *connection) shouldContinueAsNew(ctx workflow.Context) bool {
	return c.canSuggested(ctx) && !c.s.Backfill.Running && c.s.State != StateConnecting
}

// continueAsNew starts a fresh history with the same state, after every
// handler has finished and no signal is left unread.
func (c *connection) continueAsNew(ctx workflow.Context) (ConnectionResult, error) {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return ConnectionResult{}, err
	}
	c.drainSignals()
	st := c.s
	return ConnectionResult{}, workflow.NewContinueAsNewError(ctx, Connection, ConnectionInput{
		ID: st.ID, OrgID: st.OrgID, OwnerID: st.OwnerID, Mode: st.Mode, Settings: st.Settings, Options: c.opts, State: &st,
	})
}

// drainSignals applies every signal not yet read, so the state carried
// across continue-as-new holds them all (as pending work).
func (c *connection) drainSignals() {
	for {
		var p BackfillProgress
		if !c.progress.ReceiveAsync(&p) {
			break
		}
		c.applyProgress(p)
	}
	for c.changes.ReceiveAsync(nil) {
		c.s.Pending.Sync = true
	}
	for {
		var l LifecycleSignal
		if !c.lifecycle.ReceiveAsync(&l) {
			break
		}
		c.onLifecycle(l)
	}
}

// withLocalRetries gives short bookkeeping activities a retry policy that
// never gives up.
func withLocalRetries(ctx workflow.Context, timeout time.Duration) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	})
}
