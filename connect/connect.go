// Package connect runs the consent flow around a connection's workflow: it
// creates the connection and its authorize URL (PKCE S256, a state bound to
// the connection), and completes consent from the OAuth callback, handing
// the authorization code to the workflow by reference: the code goes to
// Vault, only the reference goes through Temporal.
package connect

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// Service creates connections and completes their consent.
type Service struct {
	Temporal client.Client
	Tokens   *vault.TokenStore
	Store    *store.Store
	Identity identity.Config
	// Options are passed to new connection workflows.
	Options workflows.Options
	// TaskQueue runs the workflows (default workflows.TaskQueue).
	TaskQueue string
	// Namespace is the Temporal namespace of the workflows (default
	// "default"); Repair names it.
	Namespace string
	// HandoffTimeout bounds each wait of Callback for the workflow to
	// accept the consent (default 20 s): when one runs out, Callback waits
	// on only if Temporal answers and the workflow runs (it is merely slow
	// to take its task), so that a user whose callback cannot reach
	// Temporal is told so soon. The caller's context bounds the whole, the
	// exchange with Microsoft that follows included (ErrStillConnecting).
	HandoffTimeout time.Duration
	// Apps checks application credentials (application connections).
	Apps AppChecker
}

// Request describes a new connection.
type Request struct {
	OrgID   string
	OwnerID string
	// Mode is the kind of connection: delegated (the default) or
	// service_account.
	Mode     string
	Settings workflows.Settings
	// LoginHint pre-fills the account on Microsoft's sign-in page.
	LoginHint string
	// Visibility and ReturnURL are kept in the registry for the API.
	Visibility string
	ReturnURL  string
	// MaxPerOwner, when positive, refuses a connection to an owner who
	// already has that many live ones (store.ErrTooManyConnections).
	MaxPerOwner int
}

// Created is a new connection waiting for consent.
type Created struct {
	ConnectionID string
	AuthorizeURL string
}

// Errors callers map to HTTP answers.
var (
	ErrInvalidState   = errors.New("connect: the state parameter does not match a pending consent")
	ErrConsentExpired = errors.New("connect: the consent attempt is too old; start again")
)

// consentLifetime bounds how long an authorize URL stays usable.
const consentLifetime = time.Hour

// Create registers a connection, starts its workflow and returns the URL
// the user must open to consent.
func (s *Service) Create(ctx context.Context, r Request) (Created, error) {
	if err := r.Settings.Validate(); err != nil {
		return Created{}, err
	}
	settings := r.Settings.WithDefaults()
	raw, err := json.Marshal(settings)
	if err != nil {
		return Created{}, fmt.Errorf("connect: settings: %w", err)
	}
	id := "conn_" + random(12)
	mode := cmp.Or(r.Mode, workflows.ModeDelegated)
	// Vault first: a consent whose secrets cannot be kept leaves nothing
	// in the registry.
	authURL, err := s.newConsent(ctx, id, mode, settings, r.LoginHint)
	if err != nil {
		return Created{}, err
	}
	row := store.Connection{ID: id, OrgID: r.OrgID, OwnerID: r.OwnerID, State: workflows.StatePendingConsent, Mode: mode,
		Visibility: r.Visibility, Settings: raw, ReturnURL: r.ReturnURL}
	if r.MaxPerOwner > 0 {
		err = s.Store.CreateConnectionLimited(ctx, row, r.MaxPerOwner)
	} else {
		err = s.Store.CreateConnection(ctx, row)
	}
	if err != nil {
		s.undoCreate(ctx, id, false)
		return Created{}, err
	}
	err = s.startConsent(ctx, row, settings, enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE)
	if err != nil {
		s.undoCreate(ctx, id, true)
		return Created{}, fmt.Errorf("connect: start workflow: %w", err)
	}
	return Created{ConnectionID: id, AuthorizeURL: authURL}, nil
}

// startConsent starts a connection's workflow waiting for its first consent.
func (s *Service) startConsent(ctx context.Context, row store.Connection, settings workflows.Settings, reuse enums.WorkflowIdReusePolicy) error {
	mode := cmp.Or(row.Mode, workflows.ModeDelegated)
	_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    workflows.ConnectionWorkflowID(row.ID),
		TaskQueue:             cmp.Or(s.TaskQueue, workflows.TaskQueue),
		WorkflowIDReusePolicy: reuse,
		// A running workflow is never replaced.
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes:    workflows.StartAttributes(row.ID, mode, workflows.StatePendingConsent, "", ""),
		StaticSummary:            workflows.ConnectionSummary(row.ID, mode, row.Mailbox, workflows.StatePendingConsent),
		StaticDetails:            workflows.ConnectionDetails(row.ID, row.OrgID, row.OwnerID, mode, row.Mailbox, workflows.StatePendingConsent),
	}, workflows.Connection, workflows.ConnectionInput{ID: row.ID, OrgID: row.OrgID, OwnerID: row.OwnerID,
		Mode: mode, Settings: settings, Options: s.Options})
	return err
}

// ErrNotRestartable: the connection's workflow ended after its first
// consent, so a new run cannot take up where it was; it can only be
// disconnected (which cleans it up) and created anew.
var ErrNotRestartable = errors.New("connect: the connection's workflow ended after its first consent")

// Restart starts anew the workflow of a connection that is still waiting
// for its first consent but whose workflow is not running: a create whose
// workflow could not be started and whose row could not be taken back
// either (Postgres and Temporal down together), or a run an operator
// terminated before the user signed in. Nothing was obtained yet, so a new
// run from the registry's settings loses nothing; a sign-in through a fresh
// authorize URL (Reauthorize) then completes the connection. A workflow
// running meanwhile (another restart, a clean-up) is left as it is.
func (s *Service) Restart(ctx context.Context, row store.Connection) error {
	if row.State != workflows.StatePendingConsent {
		return ErrNotRestartable
	}
	err := s.startConsent(ctx, row, SettingsOf(row), enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &running) {
		return fmt.Errorf("connect: restart the workflow of %s: %w", row.ID, err)
	}
	return nil
}

// undoCreate takes back a create that failed half-way, so that nothing
// half-made stays: the consent's secrets in Vault, and the registry row with
// its events when one was written. A row that cannot be deleted (Postgres
// gone too) is marked disconnected if it can be; one left even so is
// removed by a later disconnect, which cleans up a connection without a
// workflow (CleanUp).
func (s *Service) undoCreate(ctx context.Context, id string, rowWritten bool) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, _ = s.Tokens.Purge(uctx, id)
	if !rowWritten {
		return
	}
	if err := s.Store.DeleteUnstarted(uctx, id); err != nil {
		_ = s.Store.UpdateConnection(uctx, id, store.ConnectionUpdate{State: workflows.StateDisconnected})
	}
}

// SettingsOf reads the settings the workflow wrote into a registry row.
func SettingsOf(row store.Connection) workflows.Settings {
	var s workflows.Settings
	if len(row.Settings) > 2 {
		_ = json.Unmarshal(row.Settings, &s)
	}
	return s.WithDefaults()
}

// ErrNotOrphaned: the connection's workflow is running (or the connection
// is already disconnected); ask the workflow instead.
var ErrNotOrphaned = errors.New("connect: the connection's workflow is running or the connection has ended")

// CleanUp disconnects a connection whose workflow ended without
// disconnecting it (an operator terminated it, or it failed): a new run
// under the same workflow ID starts in the disconnecting state from what
// the registry knows, and runs the disconnect saga (subscriptions, Vault,
// retention), which frees the mailbox. It answers the new run's status.
func (s *Service) CleanUp(ctx context.Context, row store.Connection) (workflows.Status, error) {
	if row.State == workflows.StateDisconnected {
		return workflows.Status{}, ErrNotOrphaned
	}
	st := workflows.Orphan(row.ID, row.OrgID, row.OwnerID, cmp.Or(row.Mode, workflows.ModeDelegated), row.Mailbox, SettingsOf(row))
	st.UserID, st.TenantID, st.DisplayName = row.UserID, row.TenantID, row.DisplayName
	if row.Mode == workflows.ModeServiceAccount {
		// Its attached mailboxes are detached by the saga first.
		boxes, err := s.Store.ListMailboxes(ctx, row.ID)
		if err != nil {
			return workflows.Status{}, fmt.Errorf("connect: mailboxes of %s: %w", row.ID, err)
		}
		for _, m := range boxes {
			if m.State == workflows.StateDisconnected {
				continue
			}
			if st.Mailboxes == nil {
				st.Mailboxes = map[string]workflows.MailboxRef{}
			}
			var ms workflows.Settings
			_ = json.Unmarshal(m.Settings, &ms)
			st.Mailboxes[m.ID] = workflows.MailboxRef{ID: m.ID, Address: m.Address, UserID: m.UserID, Retention: ms.WithDefaults().Retention}
		}
	}
	_, err := s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    workflows.ConnectionWorkflowID(row.ID),
		TaskQueue:             cmp.Or(s.TaskQueue, workflows.TaskQueue),
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// A running workflow is not replaced: the caller asks it instead.
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		TypedSearchAttributes:    workflows.StartAttributes(row.ID, st.Mode, st.State, st.TenantID, st.Mailbox),
		StaticSummary:            workflows.ConnectionSummary(row.ID, st.Mode, row.Mailbox, st.State),
		StaticDetails:            workflows.ConnectionDetails(row.ID, row.OrgID, row.OwnerID, st.Mode, row.Mailbox, st.State),
	}, workflows.Connection, workflows.ConnectionInput{ID: row.ID, OrgID: row.OrgID, OwnerID: row.OwnerID, Mode: st.Mode,
		Settings: st.Settings, Options: s.Options, State: &st})
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		return workflows.Status{}, ErrNotOrphaned
	}
	if err != nil {
		return workflows.Status{}, fmt.Errorf("connect: start the clean-up of %s: %w", row.ID, err)
	}
	return workflows.Status{ConnectionState: st, NextAction: "disconnecting"}, nil
}

// Disconnect disconnects a connection, whatever its workflow did: a
// running workflow runs its saga (asking again while it runs is answered
// with where it stands); a connection whose workflow ended without
// disconnecting is cleaned up by a new run (CleanUp); one already
// disconnected is answered as it is (Status.State says so).
func (s *Service) Disconnect(ctx context.Context, row store.Connection) (workflows.Status, error) {
	if row.State == workflows.StateDisconnected {
		return workflows.Status{ConnectionState: workflows.ConnectionState{ID: row.ID, State: row.State, Mailbox: row.Mailbox}}, nil
	}
	st, err := s.update(ctx, row.ID, workflows.UpdateDisconnect)
	var rejected *temporal.ApplicationError // only when already disconnected
	switch {
	case err == nil:
		return st, nil
	case errors.As(err, &rejected):
		return s.status(ctx, row.ID)
	case !Ended(err):
		return workflows.Status{}, err
	}
	st, err = s.CleanUp(ctx, row)
	if errors.Is(err, ErrNotOrphaned) {
		// A clean-up started meanwhile (or the workflow was started again):
		// ask it.
		return s.update(ctx, row.ID, workflows.UpdateDisconnect)
	}
	return st, err
}

// Ended says an error means the connection's workflow is closed.
func Ended(err error) bool {
	var gone *serviceerror.NotFound
	var failed *serviceerror.FailedPrecondition
	return errors.As(err, &gone) || errors.As(err, &failed)
}

func (s *Service) update(ctx context.Context, id, name string, args ...any) (workflows.Status, error) {
	h, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.Status
	if err == nil {
		err = h.Get(ctx, &st)
	}
	return st, err
}

func (s *Service) status(ctx context.Context, id string) (workflows.Status, error) {
	v, err := s.Temporal.QueryWorkflow(ctx, workflows.ConnectionWorkflowID(id), "", workflows.QueryStatus)
	if err != nil {
		return workflows.Status{}, err
	}
	var st workflows.Status
	return st, v.Get(&st)
}

// Reauthorize returns a fresh authorize URL for an existing connection.
func (s *Service) Reauthorize(ctx context.Context, connectionID, mode string, settings workflows.Settings, loginHint string) (string, error) {
	return s.newConsent(ctx, connectionID, mode, settings.WithDefaults(), loginHint)
}

// newConsent stores a PKCE verifier and a state nonce in Vault and builds
// the authorize URL with the least scopes for the features (their .Shared
// forms for a service account).
func (s *Service) newConsent(ctx context.Context, id, mode string, settings workflows.Settings, loginHint string) (string, error) {
	verifier := oauth2.GenerateVerifier()
	nonce := random(24)
	if err := s.Tokens.PutPending(ctx, id, vault.Pending{Verifier: verifier, StateNonce: nonce, RedirectURI: s.Identity.RedirectURL, Created: time.Now()}); err != nil {
		return "", err
	}
	scopes := s.Identity.Scopes(identity.Features{Read: settings.Features.Read, Send: settings.Features.Send,
		Shared: mode == workflows.ModeServiceAccount})
	// Without a hint, let the user pick the account; with one, it is chosen.
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	} else {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", "select_account"))
	}
	return s.Identity.OAuth("", scopes).AuthCodeURL(id+"."+nonce, opts...), nil
}

// Outcome is what the callback tells the user.
type Outcome struct {
	ConnectionID string
	// Mode is the connection's kind (a service account's page says that
	// shared mailboxes are attached next).
	Mode        string
	State       string
	Mailbox     string
	DisplayName string
	Reason      string
	ReasonText  string
}

// Callback completes consent from the redirect's query. It checks the state
// against the pending consent (constant time), keeps the code in Vault under
// a fresh reference and hands the reference to the workflow, waiting until
// the exchange is done. A refusal from Microsoft is recorded with its
// reason. The code never enters Temporal, logs or the outcome.
func (s *Service) Callback(ctx context.Context, q url.Values) (Outcome, error) {
	id, nonce, ok := strings.Cut(q.Get("state"), ".")
	if !ok || !strings.HasPrefix(id, "conn_") {
		return Outcome{}, ErrInvalidState
	}
	pending, err := s.Tokens.GetPending(ctx, id)
	if errors.Is(err, vault.ErrNotFound) {
		return Outcome{}, ErrInvalidState
	}
	if err != nil {
		return Outcome{}, err
	}
	if subtle.ConstantTimeCompare([]byte(pending.StateNonce), []byte(nonce)) != 1 {
		return Outcome{}, ErrInvalidState
	}
	if !pending.Completed.IsZero() {
		// The same redirect again after the consent was over (a reload, a
		// lost answer): nothing is handed over; the user is told how it
		// ended and sent back to the app.
		if time.Since(pending.Completed) > consentLifetime {
			return Outcome{ConnectionID: id}, ErrConsentExpired
		}
		st, err := s.settled(ctx, id)
		if err != nil {
			return Outcome{ConnectionID: id}, fmt.Errorf("connect: read the connection: %w", err)
		}
		return Outcome{ConnectionID: id, Mode: st.Mode, State: st.State, Mailbox: st.Mailbox, DisplayName: st.DisplayName, Reason: st.Reason, ReasonText: st.ReasonText}, nil
	}
	if time.Since(pending.Created) > consentLifetime {
		return Outcome{ConnectionID: id}, ErrConsentExpired
	}
	in := workflows.ConsentInput{}
	if e := q.Get("error"); e != "" {
		reason, _ := identity.Classify(identity.AtSignIn, e, q.Get("error_description"))
		in.Reason, in.ReasonText = string(reason), reason.Describe()
	} else {
		code := q.Get("code")
		if code == "" {
			return Outcome{ConnectionID: id}, ErrInvalidState
		}
		in.Ref = random(16)
		if err := s.Tokens.PutConsentCode(ctx, id, in.Ref, code); err != nil {
			return Outcome{}, err
		}
	}
	h, err := s.handOff(ctx, id, in)
	var st workflows.Status
	if err == nil {
		err = h.Get(ctx, &st)
		if err != nil && ctx.Err() != nil {
			// Accepted: the exchange goes on without the caller.
			return Outcome{ConnectionID: id, State: workflows.StateConnecting}, ErrStillConnecting
		}
	}
	if errors.Is(err, ErrStillConnecting) {
		return Outcome{ConnectionID: id, State: workflows.StatePendingConsent}, err
	}
	var refused *temporal.ApplicationError
	if errors.As(err, &refused) {
		// The workflow is not waiting for consent: the same redirect came
		// twice (a reload, a second tab) while the first was exchanged.
		// This code is not needed; the user is told how the first ended.
		if in.Ref != "" {
			if derr := s.Tokens.DeleteConsentCode(context.WithoutCancel(ctx), id, in.Ref); derr != nil {
				return Outcome{ConnectionID: id}, derr
			}
		}
		st, err = s.settled(ctx, id)
	}
	if err != nil {
		return Outcome{ConnectionID: id}, fmt.Errorf("connect: hand consent to the workflow: %w", err)
	}
	return Outcome{ConnectionID: id, Mode: st.Mode, State: st.State, Mailbox: st.Mailbox, DisplayName: st.DisplayName, Reason: st.Reason, ReasonText: st.ReasonText}, nil
}

// ErrStillConnecting: the consent was handed to the connection's workflow,
// which had not finished with it when the caller's time ran out (the
// workflow is slow to take its tasks, as when many connections are made at
// once, or the exchange with Microsoft is slow). The connection completes
// without the caller; its state and events tell how it ended.
var ErrStillConnecting = errors.New("connect: the consent was handed over; the connection is still being made")

// handOff hands a consent to the connection's workflow and waits until the
// workflow accepts it. Each attempt is bounded by HandoffTimeout; one that
// runs out is asked again under the same update ID (the same hand-off,
// never a second) for as long as Temporal answers and the workflow runs;
// one refused because the workflow's last task failed (a worker timed out
// under load) is asked again shortly. When ctx ends first, the consent goes
// to the workflow as a signal too (consentBySignal): ErrStillConnecting
// once Temporal took it. When Temporal does not answer, or the workflow
// has ended, the attempt's error.
func (s *Service) handOff(ctx context.Context, id string, in workflows.ConsentInput) (client.WorkflowUpdateHandle, error) {
	h, err := s.updateConsent(ctx, id, in)
	if err != nil && outOfTime(ctx) {
		return nil, s.consentBySignal(ctx, id, in, err)
	}
	return h, err
}

// outOfTime says whether the caller's time has run out: ctx is done, or
// its deadline has passed though ctx does not say so yet. A context derived
// from ctx with the same deadline (a look at the workflow bounded by the
// caller's time) may end a moment before ctx itself does; its error must
// not be taken for Temporal's.
func outOfTime(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// updateConsent is handOff's update: ErrStillConnecting when ctx ended
// after Temporal had answered, the last refusal when ctx ended while
// Temporal refused the update for a failed workflow task.
func (s *Service) updateConsent(ctx context.Context, id string, in workflows.ConsentInput) (client.WorkflowUpdateHandle, error) {
	opts := client.UpdateWorkflowOptions{UpdateID: "consent-" + random(12), WorkflowID: workflows.ConnectionWorkflowID(id),
		UpdateName: workflows.UpdateConsent, Args: []any{in}, WaitForStage: client.WorkflowUpdateStageAccepted}
	handoff := cmp.Or(s.HandoffTimeout, 20*time.Second)
	answered := false // Temporal answered after an attempt ran out
	notReadyWait := 250 * time.Millisecond
	for {
		hctx, cancel := context.WithTimeout(ctx, handoff)
		h, err := s.Temporal.UpdateWorkflow(hctx, opts)
		// An attempt that runs out may be reported as the client's own
		// timeout or as the deadline of the request under way.
		timedOut := errors.Is(hctx.Err(), context.DeadlineExceeded)
		cancel()
		if err != nil && outOfTime(ctx) && answered {
			// The caller's time ran out (however the client reports it),
			// Temporal having answered before.
			return nil, ErrStillConnecting
		}
		var notReady *serviceerror.WorkflowNotReady
		if errors.As(err, &notReady) {
			// The workflow's last task failed and Temporal retries it
			// (a worker that timed out or lost its history read under
			// load); until one succeeds no update is taken. The same
			// update is asked again shortly, within the caller's time.
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(notReadyWait):
			}
			notReadyWait = min(2*notReadyWait, 4*time.Second)
			continue
		}
		var slow *client.WorkflowUpdateServiceTimeoutOrCanceledError
		if !errors.As(err, &slow) && (err == nil || !timedOut) {
			return h, err
		}
		if outOfTime(ctx) {
			if answered {
				return nil, ErrStillConnecting
			}
			return nil, err
		}
		if perr := s.running(ctx, id, min(handoff, 5*time.Second)); perr != nil {
			if outOfTime(ctx) && answered {
				// The caller's time ran out during the look, Temporal
				// having answered before.
				return nil, ErrStillConnecting
			}
			return nil, fmt.Errorf("%w; then %w", err, perr)
		}
		answered = true
	}
}

// consentBySignal hands a consent over as a signal once the caller's time
// ran out before the workflow accepted the update (cause). An update
// Temporal was given is not durable until the workflow accepts it: a
// workflow task that times out under load loses it, and Temporal refuses
// new ones until a retry of that task succeeds. A signal is durable once
// Temporal answers, in that state too, and the workflow takes the consent
// from it as from the update: the user's sign-in is not lost, and
// ErrStillConnecting tells the caller so. Should the update be taken as
// well, the workflow takes whichever comes first and refuses the other
// (ConnectionState.TakenConsentRef).
func (s *Service) consentBySignal(ctx context.Context, id string, in workflows.ConsentInput, cause error) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.Temporal.SignalWorkflow(sctx, workflows.ConnectionWorkflowID(id), "", workflows.SignalConsent, in); err != nil {
		return fmt.Errorf("%w; then signalling it: %w", cause, err)
	}
	return ErrStillConnecting
}

// running checks within d that Temporal answers and the connection's
// workflow runs.
func (s *Service) running(ctx context.Context, id string, d time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	desc, err := s.Temporal.DescribeWorkflowExecution(pctx, workflows.ConnectionWorkflowID(id), "")
	if err != nil {
		return fmt.Errorf("connect: describe the workflow: %w", err)
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return fmt.Errorf("connect: the connection's workflow is %s", st)
	}
	return nil
}

// settled answers the connection's status once no code exchange is under
// way; ErrStillConnecting when one still is as ctx ends.
func (s *Service) settled(ctx context.Context, id string) (workflows.Status, error) {
	for {
		st, err := s.status(ctx, id)
		if err != nil {
			return st, err
		}
		if st.State != workflows.StateConnecting {
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, ErrStillConnecting
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
