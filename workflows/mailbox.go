package workflows

import (
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// A service account's connection holds the shared mailboxes attached to
// it. Each mailbox has its own workflow (Mailbox): its backfill child, its
// polling rounds, its state and its events, so a connection can hold many
// mailboxes with bounded histories. The connection's workflow owns the
// credential: it attaches mailboxes (checking that the account can reach
// each), tells them when the credential dies and comes back, and detaches
// them all when it is disconnected.

// MailboxWorkflowID is the workflow ID of an attached mailbox; the only
// place it is built.
func MailboxWorkflowID(mailboxID string) string { return "mailbox/" + mailboxID }

// Handler names of the mailbox protocol.
const (
	// UpdateAttach attaches a mailbox to a service account's connection.
	UpdateAttach = "attach"
	// SignalCredential carries a change of the credential: from a
	// connection to its mailboxes (dead or alive again), and from a
	// mailbox to its connection (a call found it dead).
	SignalCredential = "credential"
	// SignalMailboxEnded tells a connection that one of its mailboxes was
	// detached and its workflow has ended.
	SignalMailboxEnded = "mailbox_ended"
	// UpdateDetachEnded detaches a mailbox whose workflow ended without
	// detaching it (an operator terminated it): the connection applies its
	// retention and records it detached.
	UpdateDetachEnded = "detach_ended"
)

// DetachEndedInput names the mailbox and the retention to apply.
type DetachEndedInput struct {
	MailboxID string `json:"mailboxId"`
	Retention string `json:"retention"`
}

// StateAccessLost is a mailbox's state when the account can no longer reach
// it (its rights were removed in Exchange): it waits, at its cursor, until
// the app asks it to try again.
const StateAccessLost = "access_lost"

// Reasons of the mailbox protocol.
const (
	// ReasonCredentialDead: the connection's credential must be renewed by
	// a new sign-in; every mailbox waits at its cursor.
	ReasonCredentialDead = "credential_dead"
	// ReasonMailboxUnreachable: the account cannot open the mailbox.
	ReasonMailboxUnreachable = "mailbox_unreachable"
)

// ErrMailboxUnreachable is the error type of a call refused because the
// account has no access to the mailbox (Graph's 403 ErrorAccessDenied, or
// a mailbox that does not exist); details carry the reason and what the
// Exchange administrator must grant.
const ErrMailboxUnreachable = "MailboxUnreachable"

// ErrAlreadyAttached: the connection lists the address among its
// mailboxes. Right after a detach this lasts until the detached mailbox's
// workflow has told its connection it ended.
const ErrAlreadyAttached = "AlreadyAttached"

// mailboxTransitions is every change of state a mailbox may make. A
// mailbox starts active (it was checked before it was attached).
var mailboxTransitions = map[string][]string{
	StateActive:         {StateReauthRequired, StateAccessLost, StateDisconnecting},
	StateReauthRequired: {StateActive, StateDisconnecting},
	StateAccessLost:     {StateActive, StateReauthRequired, StateDisconnecting},
	StateDisconnecting:  {StateDisconnected},
	StateDisconnected:   nil,
}

// mailboxEvents are the events the app is told when a mailbox enters a
// state; a paused mailbox says nothing (its connection's event does).
var mailboxEvents = map[string]string{
	StateAccessLost:   "mailbox.access_lost",
	StateDisconnected: "mailbox.detached",
}

// MailboxRef is what a connection keeps of an attached mailbox.
type MailboxRef struct {
	ID          string `json:"id"`
	Address     string `json:"address"`
	UserID      string `json:"userId,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Retention   string `json:"retention,omitempty"`
}

// AttachInput attaches a mailbox by address. The API chooses the ID.
type AttachInput struct {
	MailboxID string   `json:"mailboxId"`
	Address   string   `json:"address"`
	Settings  Settings `json:"settings"`
}

// CredentialSignal is a change of the credential.
type CredentialSignal struct {
	Dead   bool   `json:"dead"`
	Reason string `json:"reason,omitempty"`
	Text   string `json:"text,omitempty"`
}

// MailboxEnded names a mailbox whose workflow has ended.
type MailboxEnded struct {
	MailboxID string `json:"mailboxId"`
}

// MailboxInput starts (or continues) a mailbox's workflow.
type MailboxInput struct {
	ID           string           `json:"id"`
	ConnectionID string           `json:"connectionId"`
	OrgID        string           `json:"orgId"`
	OwnerID      string           `json:"ownerId"`
	TenantID     string           `json:"tenantId,omitempty"`
	Address      string           `json:"address"`
	UserID       string           `json:"userId"`
	DisplayName  string           `json:"displayName,omitempty"`
	Settings     Settings         `json:"settings"`
	Granted      Features         `json:"granted"`
	Options      Options          `json:"options"`
	State        *ConnectionState `json:"state,omitempty"`
	// Mode is the kind of the mailbox's connection (service_account when
	// empty, or application).
	Mode string `json:"mode,omitempty"`
	// Backfilled is the mailbox's backfill, done by its application
	// connection ahead of this workflow (app-prefill): the workflow begins
	// live, from the cursors it committed. Nil: the workflow backfills.
	Backfilled *Prefilled `json:"backfilled,omitempty"`
}

// CheckMailboxInput asks whether a connection's account can open a
// mailbox.
type CheckMailboxInput struct {
	ConnectionID string `json:"connectionId"`
	Address      string `json:"address"`
}

// CheckMailboxResult names the mailbox the account reached.
type CheckMailboxResult struct {
	UserID      string `json:"userId"`
	Address     string `json:"address"`
	DisplayName string `json:"displayName,omitempty"`
}

// RegisterMailboxInput writes an attached mailbox's registry row.
type RegisterMailboxInput struct {
	ConnectionID string   `json:"connectionId"`
	MailboxID    string   `json:"mailboxId"`
	Address      string   `json:"address"`
	UserID       string   `json:"userId"`
	DisplayName  string   `json:"displayName,omitempty"`
	Settings     Settings `json:"settings"`
}

// Mailbox is the workflow of one mailbox attached to a service account's
// connection: backfill, polling rounds, access lost and regained, pauses
// while the credential is dead, and the detach saga. Cancelling it (in the
// Temporal UI or CLI) detaches the mailbox with its retention policy.
func Mailbox(ctx workflow.Context, in MailboxInput) (ConnectionResult, error) {
	c := &connection{opts: in.Options.withDefaults(), log: workflow.GetLogger(ctx), settingsMu: workflow.NewMutex(ctx)}
	if in.State != nil {
		c.s = *in.State
		c.s.Runs++
	} else {
		if in.ID == "" || in.ConnectionID == "" || in.Address == "" {
			return ConnectionResult{}, temporal.NewNonRetryableApplicationError("a mailbox needs an ID, a connection and an address", "InvalidInput", nil)
		}
		if err := in.Settings.Validate(); err != nil {
			return ConnectionResult{}, temporal.NewNonRetryableApplicationError(err.Error(), "InvalidInput", nil)
		}
		settings := in.Settings.WithDefaults()
		mode := in.Mode
		if mode == "" {
			mode = ModeServiceAccount
		}
		c.s = ConnectionState{ID: in.ID, ConnectionID: in.ConnectionID, OrgID: in.OrgID, OwnerID: in.OwnerID, Mode: mode,
			Settings: settings, State: StateActive, Since: workflow.Now(ctx), Mailbox: in.Address, UserID: in.UserID,
			TenantID: in.TenantID, DisplayName: in.DisplayName, Granted: in.Granted,
			// The attach wrote the registry row so.
			Registry: RegistryMirror{State: StateActive, Settings: &settings}}
		if in.Backfilled != nil {
			c.s.Backfill = prefilledBackfill(in.Backfilled)
		}
	}
	c.log = log.With(c.log, "connection", c.s.ConnectionID, "mailbox", c.s.ID)
	c.versions(ctx) // before the handlers, as a connection's
	if err := c.registerHandlers(ctx); err != nil {
		return ConnectionResult{}, err
	}
	if err := c.upsertSearchAttributes(ctx); err != nil {
		return ConnectionResult{}, err
	}
	c.upgradeToPush(ctx)
	res, err := c.run(ctx)
	if err == nil && c.s.State == StateDisconnected {
		c.tellConnectionEnded(ctx)
	}
	return res, err
}

// isMailbox says whether this workflow is an attached mailbox's (rather
// than a connection's).
func (c *connection) isMailbox() bool { return c.s.ConnectionID != "" }

// credentialID is the connection whose tokens the workflow's calls use.
func (c *connection) credentialID() string {
	if c.isMailbox() {
		return c.s.ConnectionID
	}
	return c.s.ID
}

// mailboxID is the key of the mail the workflow syncs in the store: empty
// for a delegated connection (whose mailbox shares its ID).
func (c *connection) mailboxID() string {
	if c.isMailbox() {
		return c.s.ID
	}
	return ""
}

// syncsMail says whether this workflow syncs a mailbox itself: a delegated
// connection syncs its user's, a mailbox workflow its own; a service
// account's connection syncs none (its mailboxes do).
func (c *connection) syncsMail() bool {
	return c.s.Granted.Read && (c.isMailbox() || c.syncsOwnMailbox())
}

// syncsOwnMailbox says whether a connection's mail is under its own ID:
// a delegated connection's (an attached mailbox's is under the mailbox's).
func (c *connection) syncsOwnMailbox() bool {
	return !c.isMailbox() && c.s.Mode != ModeServiceAccount && c.s.Mode != ModeApplication
}

// pollsOnly is why the mailbox cannot be pushed to, if it cannot: Graph
// sends no change notifications for delegated access to another user's
// mailbox (docs/graph.md#subscriptions-on-shared-mailboxes). An
// application connection's mailbox is subscribed to with the application
// token (docs/application.md#push), but runs that began before outlookd
// did so poll it as they did (app-mailbox-push, versions.go).
func (c *connection) pollsOnly(ctx workflow.Context) string {
	if c.isMailbox() && c.s.Mode == ModeServiceAccount {
		return "delegated access to a shared mailbox receives no change notifications from Graph; the mailbox is polled"
	}
	if c.isApplicationMailbox() && !c.appMailboxPush(ctx) {
		return legacyApplicationPollReason
	}
	return ""
}

// legacyApplicationPollReason is why an application connection's mailbox
// was polled before outlookd subscribed to such mailboxes.
const legacyApplicationPollReason = "outlookd does not yet subscribe to an application connection's mailboxes (Graph allows it); the mailbox is polled with delta"

// isApplicationMailbox says whether the workflow is a mailbox of an
// application connection.
func (c *connection) isApplicationMailbox() bool { return c.isMailbox() && c.s.Mode == ModeApplication }

// appMailboxPush says whether this run subscribes to its application
// mailbox: runs recorded before it poll it (and delete no subscription
// when detached), as they did.
func (c *connection) appMailboxPush(ctx workflow.Context) bool {
	if c.atOnce {
		return true
	}
	return workflow.GetVersion(ctx, "app-mailbox-push", workflow.DefaultVersion, 1) >= 1
}

// upgradeToPush asks an application mailbox polled only because outlookd
// did not yet subscribe to such mailboxes (a run continued from before)
// to subscribe now.
func (c *connection) upgradeToPush(ctx workflow.Context) {
	if c.isApplicationMailbox() && c.s.Sync.Mode == SyncPolling && c.s.Sync.PollReason == legacyApplicationPollReason && c.appMailboxPush(ctx) {
		c.s.Pending.Resubscribe = true
	}
}

// tellConnectionEnded tells the connection that this mailbox is gone.
func (c *connection) tellConnectionEnded(ctx workflow.Context) {
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	err := workflow.SignalExternalWorkflow(ctx, ConnectionWorkflowID(c.s.ConnectionID), "", SignalMailboxEnded,
		MailboxEnded{MailboxID: c.s.ID}).Get(ctx, nil)
	if err != nil {
		c.log.Warn("could not tell the connection the mailbox ended", "err", err)
	}
}

// onCredential applies a change of the credential. A mailbox pauses or
// resumes; a connection told by a mailbox that the tokens are dead moves
// to reauth_required (and so pauses the others).
func (c *connection) onCredential(ctx workflow.Context, sig CredentialSignal) {
	switch {
	case c.isMailbox() && sig.Dead:
		text := "The connection's account must sign in again; the mailbox resumes where it stopped once it has."
		if c.s.Mode == ModeApplication {
			text = "The connection's application credential was refused; the mailbox resumes where it stopped once a new one is given (PUT /v1/connections/" +
				c.s.ConnectionID + "/credential)."
		}
		if c.s.State == StateActive || c.s.State == StateAccessLost {
			c.moveTo(ctx, StateReauthRequired, ReasonCredentialDead, text, nil)
		}
	case c.isMailbox():
		if c.s.State == StateReauthRequired && c.moveTo(ctx, StateActive, "", "", nil) {
			c.resume()
		}
	case sig.Dead && c.s.State == StateActive && c.isApplication():
		c.credentialRefused(ctx, sig.Reason, sig.Text)
	case sig.Dead && c.s.State == StateActive:
		c.moveTo(ctx, StateReauthRequired, sig.Reason, sig.Text, nil)
	}
}

// tellMailboxes signals every attached mailbox that the credential died or
// came back.
func (c *connection) tellMailboxes(ctx workflow.Context, sig CredentialSignal) {
	for _, id := range sortedKeys(c.s.Mailboxes) {
		err := workflow.SignalExternalWorkflow(ctx, MailboxWorkflowID(id), "", SignalCredential, sig).Get(ctx, nil)
		if err != nil {
			c.log.Warn("could not tell a mailbox about the credential", "mailbox", id, "err", err)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var mailboxIDPattern = refPattern

func (c *connection) validateAttach(in AttachInput) error {
	switch {
	case c.isMailbox() || c.s.Mode != ModeServiceAccount:
		return errors.New("only a service account's connection has mailboxes attached to it")
	case c.s.State != StateActive:
		return fmt.Errorf("the connection is %s; mailboxes are attached to an active connection", c.s.State)
	case !mailboxIDPattern.MatchString(in.MailboxID):
		return errors.New("the mailbox ID is malformed")
	}
	if _, err := ParseAddress(in.Address); err != nil {
		return err
	}
	for _, m := range c.s.Mailboxes {
		if strings.EqualFold(m.Address, in.Address) {
			return temporal.NewNonRetryableApplicationError(fmt.Sprintf("this connection already has %s attached, as %s", m.Address, m.ID), ErrAlreadyAttached, nil)
		}
	}
	if err := in.Settings.Validate(); err != nil {
		return err
	}
	if len(in.Settings.Folders) > 0 {
		return ValidateFolders(in.Settings.Folders)
	}
	return nil
}

// ParseAddress checks a mailbox address as the API and the workflow
// accept it: one plain SMTP address, no display name.
func ParseAddress(s string) (string, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s || !strings.Contains(s, "@") {
		return "", fmt.Errorf("%q is not a mailbox address; give one SMTP address such as support@contoso.com", s)
	}
	return strings.ToLower(s), nil
}

// onAttach checks that the account can open the mailbox, registers it and
// starts its workflow; it answers with the mailbox, or why it could not be
// attached (and then nothing was).
func (c *connection) onAttach(ctx workflow.Context, in AttachInput) (MailboxRef, error) {
	address, _ := ParseAddress(in.Address)
	found, err := checkMailbox.run(ctx, CheckMailboxInput{ConnectionID: c.s.ID, Address: address})
	if err != nil {
		c.onActivityError(ctx, err)
		return MailboxRef{}, err
	}
	settings := in.Settings.WithDefaults()
	if _, err := registerMailbox.run(ctx, RegisterMailboxInput{ConnectionID: c.s.ID, MailboxID: in.MailboxID, Address: found.Address,
		UserID: found.UserID, DisplayName: found.DisplayName, Settings: settings}); err != nil {
		return MailboxRef{}, err
	}
	ref := MailboxRef{ID: in.MailboxID, Address: found.Address, UserID: found.UserID, DisplayName: found.DisplayName, Retention: settings.Retention}
	// The mailbox's workflow outlives this run of the connection's
	// (continue-as-new), so it is abandoned rather than owned; the two talk
	// by signals.
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            MailboxWorkflowID(in.MailboxID),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// A cancel runs the mailbox's detach saga to its end.
		WaitForCancellation: true,
		// Shown in the Temporal UI; not part of the command's identity, so
		// runs started before it replay unchanged.
		StaticSummary: MailboxSummary(in.MailboxID, c.s.ID, found.Address),
		StaticDetails: ConnectionDetails(in.MailboxID, c.s.OrgID, c.s.OwnerID, "mailbox of "+c.s.ID, found.Address, StateActive),
	})
	child := workflow.ExecuteChildWorkflow(cctx, Mailbox, MailboxInput{
		ID: in.MailboxID, ConnectionID: c.s.ID, OrgID: c.s.OrgID, OwnerID: c.s.OwnerID, TenantID: c.s.TenantID,
		Address: found.Address, UserID: found.UserID, DisplayName: found.DisplayName, Settings: settings,
		Granted: c.s.Granted, Options: c.opts,
	})
	if err := child.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		return MailboxRef{}, err
	}
	if c.s.Mailboxes == nil {
		c.s.Mailboxes = map[string]MailboxRef{}
	}
	c.s.Mailboxes[in.MailboxID] = ref
	c.log.Info("mailbox attached", "mailbox", in.MailboxID, "address", found.Address)
	return ref, nil
}

// detachMailboxes is the connection's saga step that ends every attached
// mailbox: each is cancelled (its own saga applies its retention and tells
// the connection it ended), and the step waits until all have. A mailbox
// whose workflow is gone has its retention applied here.
func (c *connection) detachMailboxes(ctx workflow.Context) error {
	for _, id := range sortedKeys(c.s.Mailboxes) {
		err := workflow.RequestCancelExternalWorkflow(ctx, MailboxWorkflowID(id), "").Get(ctx, nil)
		if err == nil {
			continue
		}
		c.log.Warn("mailbox workflow not found; applying its retention here", "mailbox", id, "err", err)
		if err := c.detachEnded(ctx, id, c.s.Mailboxes[id].Retention); err != nil {
			return err
		}
	}
	return workflow.Await(ctx, func() bool { return len(c.s.Mailboxes) == 0 })
}

// detachEnded detaches a mailbox whose workflow has ended: its retention is
// applied and it is recorded detached, as its own saga would have.
func (c *connection) detachEnded(ctx workflow.Context, id, retention string) error {
	if _, err := applyRetention.run(ctx, RetentionInput{ConnectionID: c.s.ID, MailboxID: id, Policy: retention}); err != nil {
		return err
	}
	if err := c.recordState(ctx, recordState.opts, DetachedRecord(c.s.ID, id, retention)); err != nil {
		return err
	}
	delete(c.s.Mailboxes, id)
	return nil
}

func (c *connection) validateDetachEnded(in DetachEndedInput) error {
	switch {
	case c.isMailbox() || c.s.Mode != ModeServiceAccount && c.s.Mode != ModeApplication:
		return errors.New("only a service account's or an application connection has mailboxes")
	case in.Retention != RetentionKeep && in.Retention != RetentionDelete:
		return fmt.Errorf("retention must be %q or %q", RetentionKeep, RetentionDelete)
	case c.s.State == StateDisconnected:
		return errors.New("the connection is disconnected")
	}
	return nil
}

// onDetachEnded detaches a mailbox whose workflow ended without detaching.
// The connection's own disconnect, under way, does the same.
func (c *connection) onDetachEnded(ctx workflow.Context, in DetachEndedInput) (Status, error) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if err := c.detachEnded(dctx, in.MailboxID, in.Retention); err != nil {
		return Status{}, err
	}
	return c.status(ctx), nil
}

// Activities of the mailbox protocol.
var (
	checkMailbox    = call[CheckMailboxInput, CheckMailboxResult]{ActivityCheckMailbox, attachStep}
	registerMailbox = call[RegisterMailboxInput, None]{ActivityRegisterMailbox, attachStep}
)

// attachStep bounds each step of an attach, so the update answers within
// the API's wait: the app is told and may try again.
var attachStep = workflow.ActivityOptions{
	ScheduleToCloseTimeout: 20 * time.Second,
	StartToCloseTimeout:    10 * time.Second,
	RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 4 * time.Second},
}

// Activity names of the mailbox protocol.
const (
	ActivityCheckMailbox    = "CheckMailbox"
	ActivityRegisterMailbox = "RegisterMailbox"
)
