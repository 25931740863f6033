package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// DraftMaker composes the app's drafts in a mailbox on demand
// (activities.Drafts).
type DraftMaker interface {
	Make(ctx context.Context, ref workflows.SendRef) (string, error)
	Replace(ctx context.Context, ref workflows.SendRef, draftID string, om store.OutgoingMessage) error
	Discard(ctx context.Context, ref workflows.SendRef, draftID string) error
}

// draftJSON is a draft as the API shows it: a send in state draft, with
// the draft's message ID in the mailbox.
type draftJSON struct {
	sendJSON
	DraftID string `json:"draft_id,omitempty"`
}

func toDraftJSON(s store.Send) draftJSON {
	return draftJSON{sendJSON: toSendJSON(s), DraftID: s.DraftID}
}

// drafting is sendingFrom for drafts: the mailbox must take drafts
// (Mail.ReadWrite, or .Shared) and be reachable now, since a draft is
// made while the app waits.
func (s *server) drafting(c *gin.Context) (origin, bool) {
	o, ok := s.sendingFrom(c)
	if !ok {
		return o, false
	}
	if s.d.Drafts == nil {
		problem(c, http.StatusConflict, "not_available", "Drafts cannot be made by this server.")
		return o, false
	}
	if o.method != workflows.SendByDraft {
		problem(c, http.StatusForbidden, "read_write_not_granted", "Drafts are made in the mailbox; this connection may only send (Mail.ReadWrite was not granted).")
		return o, false
	}
	if o.row.State != workflows.StateActive {
		reauthProblem(c, o.row.State, "")
		return o, false
	}
	return o, true
}

func (o origin) ref(sendID string) workflows.SendRef {
	return workflows.SendRef{SendID: sendID, ConnectionID: o.row.ID, UserID: o.userID}
}

// draftError answers a draft that could not be made or changed.
func (s *server) draftError(c *gin.Context, o origin, err error) {
	if errors.Is(err, activities.ErrDraftGone) {
		problem(c, http.StatusConflict, "draft_gone", "The mailbox no longer holds this draft: it was deleted, or sent from Outlook.")
		return
	}
	if reason, text, ok := activities.SendRefusal(err); ok {
		problem(c, http.StatusUnprocessableEntity, reason, text)
		return
	}
	if reason, ok := activities.ReauthReason(err); ok {
		reauthProblem(c, o.row.State, reason)
		return
	}
	s.fetchError(c, mailScope{row: o.row}, err)
}

func (s *server) createDraft(c *gin.Context) {
	o, ok := s.drafting(c)
	if !ok {
		return
	}
	key, ok := idempotencyKey(c)
	if !ok {
		return
	}
	var req sendRequest
	if !bindUpTo(c, &req, maxSendBody) {
		return
	}
	msg, atts, bad := req.check(o.row.TenantID == consumerTenant, false)
	if bad != nil {
		problem(c, http.StatusUnprocessableEntity, bad.code, capitalize(bad.detail))
		return
	}
	row := o.row
	if !s.withUploads(c, o, workflows.SendID(row.ID, key), msg, atts) {
		return
	}
	snd := store.Send{ID: workflows.SendID(row.ID, key), ConnectionID: row.ID, MailboxID: o.mailboxID, Key: key,
		RequestHash: requestHash(o.hashKind("draft"), req), Kind: "draft", Message: msg}
	got, created, err := s.d.Store.CreateSend(c, snd, atts, ratesOf(o, false))
	if uploadRefusedProblem(c, err) {
		return
	}
	if errors.Is(err, store.ErrKeyReused) {
		problem(c, http.StatusUnprocessableEntity, "idempotency_key_reused", "This Idempotency-Key was used for a different request on this connection; use a new key for a new draft.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	if got.DraftID == "" && got.State == workflows.SendDraft {
		id, err := s.d.Drafts.Make(c, o.ref(got.ID))
		var recErr error
		if err == nil {
			recErr = s.d.Store.UpdateSend(c, got.ID, store.SendUpdate{DraftID: id})
			got.DraftID = id
		}
		if err != nil || recErr != nil {
			if created {
				// Nothing is left half-made here; a draft Graph made all
				// the same is found by its key when the app retries.
				if derr := s.d.Store.DeleteSend(context.WithoutCancel(c), got.ID); derr != nil {
					s.d.Logger.Error("an unmade draft could not be removed", "send", got.ID, "err", derr)
				}
			}
			if recErr != nil {
				s.unavailable(c, recErr)
			} else {
				s.draftError(c, o, err)
			}
			return
		}
	}
	status := http.StatusCreated
	if !created {
		c.Header("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	c.Header("Location", "/v1/connections/"+row.ID+"/sends/"+got.ID)
	c.PureJSON(status, toDraftJSON(got))
}

// pathDraft loads the mailbox and the draft the path names: from a mailbox
// that takes drafts now (drafting), or one that may send.
func (s *server) pathDraft(c *gin.Context, drafting bool) (origin, store.Send, bool) {
	from := s.sendingFrom
	if drafting {
		from = s.drafting
	}
	o, ok := from(c)
	if !ok {
		return o, store.Send{}, false
	}
	snd, ok := s.draft(c, o)
	return o, snd, ok
}

// draft loads the draft the path names, from the mailbox the path names.
func (s *server) draft(c *gin.Context, o origin) (store.Send, bool) {
	notFound := func() {
		problem(c, http.StatusNotFound, "draft_not_found", "This mailbox has no draft with this ID.")
	}
	id := c.Param("sid")
	if !sendIDPattern.MatchString(id) {
		notFound()
		return store.Send{}, false
	}
	snd, err := s.d.Store.GetSend(c, o.row.ID, id)
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && (snd.Kind != "draft" || snd.MailboxID != o.mailboxID):
		notFound()
		return snd, false
	case err != nil:
		s.unavailable(c, err)
		return snd, false
	}
	return snd, true
}

// notADraft answers a change to a draft that was sent or discarded.
func notADraft(c *gin.Context, snd store.Send) {
	if snd.Reason == workflows.ReasonDraftDiscarded {
		problem(c, http.StatusConflict, "draft_discarded", "This draft was discarded.")
		return
	}
	problem(c, http.StatusConflict, "draft_sent", "This draft was sent (it is a send in state "+snd.State+"); it can no longer change.")
}

// replaceDraft writes new content over a draft, in the mailbox and here.
func (s *server) replaceDraft(c *gin.Context) {
	o, snd, ok := s.pathDraft(c, true)
	if !ok {
		return
	}
	var req sendRequest
	if !bindUpTo(c, &req, maxRequestBody) {
		return
	}
	if len(req.Attachments) > 0 || len(req.Headers) > 0 || req.NoQueue {
		problem(c, http.StatusUnprocessableEntity, "invalid_draft_update", "A draft's attachments and headers are set when it is made; an update replaces its subject, body, recipients, reply_to and importance.")
		return
	}
	msg, _, bad := req.check(o.row.TenantID == consumerTenant, false)
	if bad != nil {
		problem(c, http.StatusUnprocessableEntity, bad.code, capitalize(bad.detail))
		return
	}
	msg.Headers = snd.Message.Headers
	if store.SendStarted(snd.State) {
		notADraft(c, snd)
		return
	}
	if err := s.d.Drafts.Replace(c, o.ref(snd.ID), snd.DraftID, msg); err != nil {
		s.draftError(c, o, err)
		return
	}
	if err := s.d.Store.ReplaceDraft(c, snd.ID, msg); errors.Is(err, store.ErrNotDraft) {
		// Sent meanwhile, through another request.
		if snd, err = s.d.Store.GetSend(c, o.row.ID, snd.ID); err == nil {
			notADraft(c, snd)
			return
		}
	} else if err != nil {
		s.unavailable(c, err)
		return
	}
	snd, err := s.d.Store.GetSend(c, o.row.ID, snd.ID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, toDraftJSON(snd))
}

// sendDraft sends a draft, once: the draft names its send, so asking
// again answers the send as it stands.
func (s *server) sendDraft(c *gin.Context) {
	o, snd, ok := s.pathDraft(c, false)
	if !ok {
		return
	}
	var req struct {
		NoQueue bool `json:"no_queue"`
	}
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	if snd.State == workflows.SendCanceled && snd.Reason == workflows.ReasonDraftDiscarded {
		notADraft(c, snd)
		return
	}
	got, queued, err := s.d.Store.QueueDraft(c, snd.ID, ratesOf(o, req.NoQueue))
	if sendRefusedProblem(c, err) {
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	if queued {
		if err := s.runSendWorkflow(c, o.row.ID, got.Key, s.sendInput(o, got)); err != nil {
			if uerr := s.d.Store.UnqueueDraft(context.WithoutCancel(c), got.ID); uerr != nil {
				s.d.Logger.Error("a draft whose send did not start could not be put back", "send", got.ID, "err", uerr)
			}
			s.unavailable(c, err)
			return
		}
	} else {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/v1/connections/"+o.row.ID+"/sends/"+got.ID)
	c.PureJSON(http.StatusAccepted, toDraftJSON(got))
}

// discardDraft deletes a draft from the mailbox; it is kept here as a
// canceled send, so a retry answers the same.
func (s *server) discardDraft(c *gin.Context) {
	o, snd, ok := s.pathDraft(c, true)
	if !ok {
		return
	}
	if store.SendStarted(snd.State) {
		if snd.Reason == workflows.ReasonDraftDiscarded {
			c.PureJSON(http.StatusOK, toDraftJSON(snd))
			return
		}
		notADraft(c, snd)
		return
	}
	if err := s.d.Drafts.Discard(c, o.ref(snd.ID), snd.DraftID); err != nil {
		s.draftError(c, o, err)
		return
	}
	err := s.d.Store.UpdateSend(c, snd.ID, store.SendUpdate{State: workflows.SendCanceled, Reason: workflows.ReasonDraftDiscarded,
		ReasonText: workflows.SendReasonText[workflows.ReasonDraftDiscarded]})
	if err == nil {
		snd, err = s.d.Store.GetSend(c, o.row.ID, snd.ID)
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, toDraftJSON(snd))
}

// listDrafts lists the drafts not sent yet, newest first.
func (s *server) listDrafts(c *gin.Context) { s.listSendsIn(c, workflows.SendDraft) }
