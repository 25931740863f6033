package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// mailboxIDPattern is the shape of the mailbox IDs the API gives out.
var mailboxIDPattern = regexp.MustCompile(`^mbx_[A-Za-z0-9_-]{16}$`)

// mailboxJSON is a mailbox as the API shows it.
type mailboxJSON struct {
	ID           string        `json:"id"`
	ConnectionID string        `json:"connection_id"`
	Address      string        `json:"address,omitempty"`
	State        string        `json:"state"`
	Reason       string        `json:"reason,omitempty"`
	ReasonText   string        `json:"reason_text,omitempty"`
	SyncMode     string        `json:"sync_mode,omitempty"`
	PollReason   string        `json:"poll_reason,omitempty"`
	Settings     appSettings   `json:"settings"`
	Backfill     *backfillJSON `json:"backfill,omitempty"`
	// Contacts is where the contact filter's fetches stand.
	Contacts     *contactsStatusJSON `json:"contacts,omitempty"`
	MessageCount int64               `json:"message_count"`
	// MailboxSettings are Microsoft Graph's mailboxSettings of an
	// application connection's mailbox, as last read.
	MailboxSettings       json.RawMessage `json:"mailbox_settings,omitempty"`
	MailboxSettingsReadAt *time.Time      `json:"mailbox_settings_read_at,omitempty"`
	NextAction            string          `json:"next_action,omitempty"`
	NextActionAt          *time.Time      `json:"next_action_at,omitempty"`
	LastSyncAt            *time.Time      `json:"last_sync_at,omitempty"`
	DetachedAt            *time.Time      `json:"detached_at,omitempty"`
	CreatedAt             time.Time       `json:"created_at"`
	UpdatedAt             time.Time       `json:"updated_at"`
	// Source says whether the state came from the mailbox's workflow or,
	// when Temporal did not answer, from the registry.
	Source string `json:"source"`
}

// attachRequest is the body of POST .../mailboxes.
type attachRequest struct {
	settingsPatch
	Address string `json:"address"`
}

// mailboxSettings reads a mailbox's settings as the registry holds them.
func mailboxSettings(m store.Mailbox) appSettings {
	var w workflows.Settings
	_ = json.Unmarshal(m.Settings, &w)
	return toAppSettings(w)
}

// mailboxView is a mailbox as the API shows it: the registry row, and the
// workflow's status when it answered.
func mailboxView(m store.Mailbox, count int64, st *workflows.Status) mailboxJSON {
	out := mailboxJSON{ID: m.ID, ConnectionID: m.ConnectionID, Address: m.Address, State: m.State, Reason: m.Reason,
		SyncMode: m.SyncMode, PollReason: m.PollReason, Settings: mailboxSettings(m), MessageCount: count,
		DetachedAt: m.DetachedAt, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Source: "registry",
		MailboxSettings: m.GraphSettings, MailboxSettingsReadAt: m.GraphSettingsReadAt}
	if st == nil {
		return out
	}
	cv := view(store.Connection{}, count, st)
	out.Source = "workflow"
	out.State, out.Reason, out.ReasonText = st.State, st.Reason, st.ReasonText
	out.SyncMode, out.PollReason = st.Sync.Mode, st.Sync.PollReason
	out.Settings = toAppSettings(st.Settings)
	out.Backfill, out.NextAction, out.NextActionAt, out.LastSyncAt = cv.Backfill, cv.NextAction, cv.NextActionAt, cv.LastSyncAt
	out.Contacts = cv.Contacts
	return out
}

// workflowOf is the workflow that syncs a mailbox: its own, or, for a
// delegated connection's mailbox, the connection's.
func workflowOf(m store.Mailbox) string {
	if m.ID == m.ConnectionID {
		return workflows.ConnectionWorkflowID(m.ID)
	}
	return workflows.MailboxWorkflowID(m.ID)
}

// mailbox loads the mailbox named in the path, of a connection the caller
// may see (and change, with accessChange).
func (s *server) mailbox(c *gin.Context, want access) (store.Connection, store.Mailbox, bool) {
	row, ok := s.connection(c, want)
	if !ok {
		return row, store.Mailbox{}, false
	}
	id := c.Param("mbx")
	notFound := func() {
		problem(c, http.StatusNotFound, "mailbox_not_found", "This connection has no mailbox with this ID.")
	}
	if id != row.ID && !mailboxIDPattern.MatchString(id) {
		notFound()
		return row, store.Mailbox{}, false
	}
	m, err := s.d.Store.GetMailbox(c, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.ConnectionID != row.ID {
		notFound()
		return row, m, false
	}
	if err != nil {
		s.unavailable(c, err)
		return row, m, false
	}
	return row, m, true
}

// mailboxStatus asks the workflow that syncs a mailbox for its status;
// errWorkflowClosed when it is not running.
func (s *server) mailboxStatus(ctx context.Context, m store.Mailbox) (workflows.Status, error) {
	qctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return s.queryWorkflow(qctx, workflowOf(m))
}

func (s *server) presentMailbox(ctx context.Context, m store.Mailbox) mailboxJSON {
	counts, _ := s.d.Store.CountMessagesOf(ctx, []string{m.ID})
	if m.State == workflows.StateDisconnected {
		return mailboxView(m, counts[m.ID], nil)
	}
	st, err := s.mailboxStatus(ctx, m)
	switch {
	case errors.Is(err, errWorkflowClosed):
		// Terminated by an operator: nothing syncs it until it is detached.
		out := mailboxView(m, counts[m.ID], nil)
		out.Reason = workflows.ReasonWorkflowEnded
		out.ReasonText = "The mailbox's workflow ended in Temporal without detaching it (it was terminated); nothing syncs it. An operator can repair it (POST .../repair) to go on from where it was, or detach it to clean up."
		out.NextAction = "repair, or detach to clean up"
		return out
	case err != nil:
		return mailboxView(m, counts[m.ID], nil) // the registry answers
	}
	return mailboxView(m, counts[m.ID], &st)
}

// answerMailbox answers with a mailbox as the registry now holds it.
func (s *server) answerMailbox(c *gin.Context, status int, id string) {
	m, err := s.d.Store.GetMailbox(c, id)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(status, s.presentMailbox(c, m))
}

func (s *server) listMailboxes(c *gin.Context) {
	row, ok := s.connection(c, accessRead)
	if !ok {
		return
	}
	boxes, err := s.d.Store.ListMailboxes(c, row.ID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	ids := make([]string, len(boxes))
	for i, m := range boxes {
		ids[i] = m.ID
	}
	counts, err := s.d.Store.CountMessagesOf(c, ids)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := struct {
		Data []mailboxJSON `json:"data"`
	}{Data: []mailboxJSON{}}
	for _, m := range boxes {
		out.Data = append(out.Data, mailboxView(m, counts[m.ID], nil))
	}
	c.PureJSON(http.StatusOK, out)
}

func (s *server) getMailbox(c *gin.Context) {
	_, m, ok := s.mailbox(c, accessRead)
	if !ok {
		return
	}
	c.PureJSON(http.StatusOK, s.presentMailbox(c, m))
}

// attachMailbox attaches a shared mailbox to a service account's
// connection: the connection's workflow checks that the account can open
// it, registers it and starts its workflow before answering.
func (s *server) attachMailbox(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok || disconnected(c, row) {
		return
	}
	if row.Mode != workflows.ModeServiceAccount {
		problem(c, http.StatusConflict, "not_a_service_account", "Mailboxes are attached to a service account's connection; this one is "+row.Mode+" and syncs its user's own mailbox.")
		return
	}
	var req attachRequest
	if !bind(c, &req) || !checkFolders(c, req.Folders, false) {
		return
	}
	address, err := workflows.ParseAddress(strings.TrimSpace(req.Address))
	if err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_address", capitalize(err.Error())+".")
		return
	}
	settings, err := defaultSettings(settingsOf(row).Features).apply(req.settingsPatch)
	if err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_settings", capitalize(err.Error())+".")
		return
	}
	boxes, err := s.d.Store.ListMailboxes(c, row.ID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	for _, m := range boxes {
		if m.Address == address && m.State != workflows.StateDisconnected {
			problem(c, http.StatusConflict, "already_attached", "This connection already has "+address+" attached, as "+m.ID+".")
			return
		}
	}
	id := "mbx_" + randomID()
	ctx, cancel := context.WithTimeout(c, attachTimeout)
	defer cancel()
	var ref workflows.MailboxRef
	for wait := detachedGrace; ; {
		h, err := s.d.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: workflows.ConnectionWorkflowID(row.ID), UpdateName: workflows.UpdateAttach,
			Args:         []any{workflows.AttachInput{MailboxID: id, Address: address, Settings: settings.workflow()}},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(ctx, &ref)
		}
		// The registry shows the address detached (checked above), but its
		// workflow has not told the connection yet: that takes a moment.
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == workflows.ErrAlreadyAttached && wait > 0 {
			time.Sleep(detachedPoll)
			wait -= detachedPoll
			continue
		}
		if err != nil {
			s.attachError(c, address, err)
			return
		}
		break
	}
	s.answerMailbox(c, http.StatusCreated, ref.ID)
}

// detachedGrace is how long an attach of an address the registry shows
// detached waits for the connection's workflow to hear that its mailbox
// ended, trying again every detachedPoll.
const (
	detachedGrace = 10 * time.Second
	detachedPoll  = 250 * time.Millisecond
)

// attachTimeout bounds an attach: the check at Graph and the registry
// write are each bounded by the workflow, well within it.
const attachTimeout = 50 * time.Second

// attachError answers an attach that did not happen: the account cannot
// open the mailbox (422 with the reason and what to grant), another
// connection syncs it (409), the workflow refused (409), or Temporal could
// not be reached.
func (s *server) attachError(c *gin.Context, address string, err error) {
	var appErr *temporal.ApplicationError
	switch {
	case connect.Ended(err):
		problem(c, http.StatusConflict, "connection_ended", "This connection's workflow has ended; disconnect it to clean up, or create a new one.")
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrMailboxUnreachable:
		unreachableProblem(c, appErr)
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrMailboxTaken:
		problem(c, http.StatusConflict, "mailbox_taken", address+" is already synced by another connection; detach it there first.")
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrAlreadyAttached:
		problem(c, http.StatusConflict, "already_attached", capitalize(strings.TrimSuffix(appErr.Message(), "."))+"; a mailbox just detached is attachable again once its detach has finished.")
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrReauthRequired:
		problem(c, http.StatusConflict, "reauth_required", "The service account must sign in again before mailboxes can be attached.")
	case errors.As(err, &appErr):
		problem(c, http.StatusConflict, "invalid_state", capitalize(strings.TrimSuffix(appErr.Message(), "."))+".")
	default:
		s.unavailable(c, err)
	}
}

// detachMailbox stops a mailbox's sync and applies its retention (or the
// one given as ?retention=keep|delete); the connection and its other
// mailboxes are untouched.
func (s *server) detachMailbox(c *gin.Context) {
	row, m, ok := s.mailbox(c, accessChange)
	if !ok {
		return
	}
	if m.ID == row.ID {
		problem(c, http.StatusConflict, "own_mailbox", "A delegated connection's own mailbox is detached by disconnecting the connection.")
		return
	}
	// An application connection's user whose mailbox the app detaches
	// stays out of the connection (excluded, "detached"): its directory
	// would otherwise say it syncs, and a later page start it again. After
	// the detach was asked, and again on a retry of it.
	markDetached := func() bool {
		if row.Mode != workflows.ModeApplication {
			return true
		}
		if err := s.d.Store.MarkDirectoryDetached(c, row.ID, m.ID); err != nil {
			s.unavailable(c, err)
			return false
		}
		return true
	}
	if m.State == workflows.StateDisconnected {
		if markDetached() {
			c.PureJSON(http.StatusOK, s.presentMailbox(c, m))
		}
		return
	}
	retention := c.Query("retention")
	if retention != "" && retention != workflows.RetentionKeep && retention != workflows.RetentionDelete {
		problem(c, http.StatusUnprocessableEntity, "invalid_retention", `retention must be "keep" or "delete".`)
		return
	}
	if _, err := s.mailboxStatus(c, m); errors.Is(err, errWorkflowClosed) {
		// Its workflow was terminated: the connection detaches it.
		retention = cmp.Or(retention, mailboxSettings(m).Retention)
		if _, ok := s.update(c, row.ID, workflows.UpdateDetachEnded, workflows.DetachEndedInput{MailboxID: m.ID, Retention: retention}); !ok || !markDetached() {
			return
		}
		s.answerMailbox(c, http.StatusOK, m.ID)
		return
	}
	if retention != "" {
		settings := mailboxSettings(m)
		settings.Retention = retention
		if _, ok := s.mailboxUpdate(c, m, workflows.UpdateSettings, settings.workflow()); !ok {
			return
		}
	}
	st, ok := s.mailboxUpdate(c, m, workflows.UpdateDisconnect)
	if !ok || !markDetached() {
		return
	}
	out := mailboxView(m, 0, &st)
	c.PureJSON(http.StatusAccepted, out)
}

// resyncMailbox runs a round now; a mailbox whose access was lost tries
// again.
func (s *server) resyncMailbox(c *gin.Context) {
	_, m, ok := s.mailbox(c, accessChange)
	if !ok {
		return
	}
	if m.State == workflows.StateDisconnected {
		problem(c, http.StatusConflict, "mailbox_detached", "This mailbox is detached; attach it again to sync it.")
		return
	}
	st, ok := s.mailboxUpdate(c, m, workflows.UpdateResync, workflows.ResyncInput{})
	if !ok {
		return
	}
	c.PureJSON(http.StatusAccepted, mailboxView(m, 0, &st))
}

// repairMailbox takes up again the workflow of an attached mailbox that
// an operator terminated in Temporal (or that failed), as repair does a
// connection's: connect.RepairMailbox resets the ended run, and the
// mailbox goes on from its cursors. An operator's action: admin keys only.
func (s *server) repairMailbox(c *gin.Context) {
	row, m, ok := s.mailbox(c, accessChange)
	if !ok {
		return
	}
	if !callerOf(c).Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may repair a mailbox's workflow.")
		return
	}
	if disconnected(c, row) {
		return
	}
	if m.ID == row.ID {
		problem(c, http.StatusConflict, "connection_mailbox", "This is the connection's own mailbox, synced by the connection's workflow; repair that with POST /v1/connections/"+row.ID+"/repair.")
		return
	}
	if m.State == workflows.StateDisconnected {
		problem(c, http.StatusConflict, "mailbox_detached", "This mailbox is detached; there is no workflow to repair.")
		return
	}
	ctx, cancel := context.WithTimeout(c, updateTimeout)
	defer cancel()
	done, err := s.d.Connect.RepairMailbox(ctx, m)
	path := "/v1/connections/" + row.ID + "/mailboxes/" + m.ID
	if s.repairRefused(c, err, "mailbox", "POST "+path+"/resync re-reads it.", "detach it (DELETE "+path+") to clean up.") {
		return
	}
	s.d.Logger.Info("mailbox workflow repaired", "connection", row.ID, "mailbox", m.ID, "run", done.RunID)
	s.answerMailbox(c, http.StatusOK, m.ID)
}

// mailboxUpdate runs an update on the workflow that syncs a mailbox.
func (s *server) mailboxUpdate(c *gin.Context, m store.Mailbox, name string, args ...any) (workflows.Status, bool) {
	ctx, cancel := context.WithTimeout(c, updateTimeout)
	defer cancel()
	h, err := s.d.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowOf(m), UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.Status
	if err == nil {
		err = h.Get(ctx, &st)
	}
	var nf *serviceerror.NotFound
	var appErr *temporal.ApplicationError
	switch {
	case err == nil:
		return st, true
	case errors.As(err, &nf) || connect.Ended(err):
		problem(c, http.StatusConflict, "mailbox_ended", "This mailbox's workflow has ended (it was terminated); an admin key can repair it (POST .../repair), or detach it to clean up.")
	case errors.As(err, &appErr) && appErr.Type() == workflows.ErrMailboxUnreachable:
		unreachableProblem(c, appErr)
	case errors.As(err, &appErr):
		problem(c, http.StatusConflict, "invalid_state", capitalize(strings.TrimSuffix(appErr.Message(), "."))+".")
	default:
		s.unavailable(c, err)
	}
	return st, false
}

// unreachableProblem answers that the account cannot open a mailbox, with
// the reason's sentence (what the Exchange administrator must grant).
func unreachableProblem(c *gin.Context, appErr *temporal.ApplicationError) {
	var detail struct{ Reason, Text string }
	if appErr.HasDetails() {
		_ = appErr.Details(&detail)
	}
	problem(c, http.StatusUnprocessableEntity, "mailbox_unreachable", cmp.Or(detail.Text, "The account cannot open this mailbox."))
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
