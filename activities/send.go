package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// newSendRefused is the non-retryable error of a message Graph refused
// for good; the workflow fails the send with the reason in its details.
func newSendRefused(reason, msg string, cause error) error {
	return temporal.NewNonRetryableApplicationError(msg, workflows.ErrSendRefused, cause,
		reasonDetail{Reason: reason, Text: workflows.SendReasonText[reason]})
}

func (a *Activities) mailboxFor(ctx context.Context, ref workflows.SendRef) (*mailbox, error) {
	gc, err := a.graphFor(ctx, ref.ConnectionID, ref.UserID)
	if err != nil {
		return nil, err
	}
	return &mailbox{gc: gc, userID: ref.UserID, hc: a.httpClient(), files: a.Store.UploadReader}, nil
}

// PrepareSend makes sure the mailbox holds the send's stamped draft with
// all its attachments, and answers its ID. It looks the key up before
// creating anything, so a retry after a lost answer (or a worker killed
// after the request) finds the draft it created instead of making
// another; when the key is already in Outbox or Sent Items, the message
// went, and that is answered instead.
func (a *Activities) PrepareSend(ctx context.Context, in workflows.SendRef) (workflows.PrepareSendResult, error) {
	// Large files take a while: the heartbeat says the worker lives, and
	// how far the file being uploaded has gone.
	hb, stop := startHeartbeat(ctx)
	defer stop()
	snd, err := a.Store.GetSendByID(ctx, in.SendID)
	if err != nil {
		return workflows.PrepareSendResult{}, fmt.Errorf("activities: send %s: %w", in.SendID, err)
	}
	atts, err := a.Store.SendAttachments(ctx, in.SendID)
	if err != nil {
		return workflows.PrepareSendResult{}, err
	}
	m, err := a.mailboxFor(ctx, in)
	if err != nil {
		return workflows.PrepareSendResult{}, err
	}
	m.progress = func(p UploadProgress) { hb.record(p) }
	loc, err := m.locateNew(ctx, in.SendID)
	if err != nil {
		return workflows.PrepareSendResult{}, err
	}
	switch loc.Found {
	case workflows.FoundDrafts:
		// Created before: finish its attachments.
		if err := m.attach(ctx, loc.MessageID, atts); err != nil {
			return workflows.PrepareSendResult{}, err
		}
		return workflows.PrepareSendResult{DraftID: loc.MessageID, Found: loc.Found}, nil
	case workflows.FoundNowhere:
	default:
		return workflows.PrepareSendResult{DraftID: loc.MessageID, Found: loc.Found}, nil
	}
	var id string
	switch snd.Kind {
	case kindDraft:
		// The app's draft was made when it asked; nowhere now, the user
		// deleted it: it is not made again.
		return workflows.PrepareSendResult{}, newSendRefused(workflows.ReasonDraftGone, "the draft is no longer in the mailbox", nil)
	case kindReply, kindReplyAll, kindForward:
		id, err = m.createResponse(ctx, snd.Kind, snd.Message.InReplyTo, in.SendID, snd.Message)
	default:
		id, err = m.createDraft(ctx, in.SendID, snd.Message)
	}
	if err != nil {
		return workflows.PrepareSendResult{}, err
	}
	if err := m.attach(ctx, id, atts); err != nil {
		return workflows.PrepareSendResult{}, err
	}
	return workflows.PrepareSendResult{DraftID: id}, nil
}

// SubmitSend sends the stamped draft, once: the workflow runs it with a
// single attempt and learns from the mailbox what an ambiguous answer
// meant. Given the mailbox's rates, it first takes the send's slot in
// them (docs/sending.md#limits-before-graphs), with the token already in
// hand so that the request follows the slot at once; with no slot free,
// nothing is sent and the time of the next one is answered.
func (a *Activities) SubmitSend(ctx context.Context, in workflows.SubmitSendInput) (workflows.SubmitSendResult, error) {
	m, err := a.sendingMailbox(ctx, in.SendRef)
	if err != nil {
		return workflows.SubmitSendResult{}, err
	}
	if wait, err := a.takeSlot(ctx, in.SendRef, in.DraftID, in.Rates, in.Submission); err != nil || !wait.IsZero() {
		return submissionMade(wait, err)
	}
	return m.submit(ctx, in.DraftID)
}

// takeSlot takes the send's slot in its mailbox's rates, or answers when
// one is free; rates of zero (a workflow started before slots were taken
// at submission, whose slot the API took) take none, and come with no
// number. A numbered submission is recorded with the slot (store.TakeSlot). Nothing has
// reached Graph when it fails, but with store.ErrSubmissionMade: the same
// submission ran before, and may have.
func (a *Activities) takeSlot(ctx context.Context, ref workflows.SendRef, draftID string, rates workflows.SendRates, submission int) (time.Time, error) {
	if rates.PerMinute <= 0 {
		return time.Time{}, nil
	}
	return a.Store.TakeSlot(ctx, ref.SendID, draftID, store.Rates{Mailbox: ref.UserID, PerMinute: rates.PerMinute, DailyRecipients: rates.DailyRecipients}, submission)
}

// submissionMade sorts what taking the slot answered: a time to wait for,
// a submission that ran before (its worker died before its answer was
// recorded, and the workflow's task ran it again: ambiguous, learnt by
// looking in the mailbox), or a failure before anything reached Graph.
func submissionMade(wait time.Time, err error) (workflows.SubmitSendResult, error) {
	switch {
	case err == nil:
		return workflows.SubmitSendResult{WaitUntil: wait}, nil
	case errors.Is(err, store.ErrSubmissionMade):
		return workflows.SubmitSendResult{Ambiguous: true,
			Detail: "this submission was made before, and its answer was lost with its worker"}, nil
	}
	return workflows.SubmitSendResult{}, notSent(err)
}

// LocateSend says where the mailbox shows the send's key: Sent Items,
// Outbox, Drafts, elsewhere, or nowhere.
func (a *Activities) LocateSend(ctx context.Context, in workflows.SendRef) (workflows.LocateSendResult, error) {
	_, stop := startHeartbeat(ctx)
	defer stop()
	m, err := a.mailboxFor(ctx, in)
	if err != nil {
		return workflows.LocateSendResult{}, err
	}
	return m.locate(ctx, in.SendID)
}

// RecordSend writes a send's state and its events in one transaction; a
// send in a final state keeps it.
func (a *Activities) RecordSend(ctx context.Context, in workflows.RecordSendInput) error {
	u := store.SendUpdate{State: in.State, Reason: in.Reason, ReasonText: in.ReasonText, DraftID: in.DraftID, MessageID: in.MessageID, Sender: in.Sender}
	if !in.NotBefore.IsZero() {
		nb := in.NotBefore
		u.NotBefore = &nb
	}
	for _, e := range in.Events {
		u.Events = append(u.Events, store.Event{ID: e.ID, ConnectionID: in.ConnectionID, Type: e.Type, Data: e.Data})
	}
	err := a.Store.UpdateSend(ctx, in.SendID, u)
	if errors.Is(err, store.ErrNotFound) {
		return temporal.NewNonRetryableApplicationError("the send is not in the registry", workflows.ErrGraphRejected, err)
	}
	return err
}

// notSent marks an error that happened before any request reached Graph:
// the workflow may try again without looking.
func notSent(err error) error {
	return temporal.NewApplicationErrorWithCause("nothing was sent: "+err.Error(), workflows.ErrNotSent, err)
}

// sendingMailbox is mailboxFor with the token in hand before any request,
// so that a failure to get it (Vault, a refresh) is known not to have
// sent anything; a dead refresh token is ReauthRequired.
func (a *Activities) sendingMailbox(ctx context.Context, ref workflows.SendRef) (*mailbox, error) {
	ts := &vaultTokenSource{ctx: ctx, a: a, connectionID: ref.ConnectionID}
	if _, err := ts.Token(); err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			return nil, appErr
		}
		return nil, notSent(err)
	}
	gc, err := graph.NewClient(graph.Config{BaseURL: a.GraphURL, Transport: a.graphTransport(ts, ref.UserID)}, ts)
	if err != nil {
		return nil, notSent(err)
	}
	return &mailbox{gc: gc, userID: ref.UserID, hc: a.httpClient(), files: a.Store.UploadReader}, nil
}

// SendMailOnce sends a send-only connection's message with sendMail, once:
// without Mail.ReadWrite there is no draft to stamp and no mailbox to look
// in, so an ambiguous answer cannot be resolved and the workflow reports
// it as outcome_unknown rather than send again. The message carries the
// send's key all the same, on its Sent Items copy.
func (a *Activities) SendMailOnce(ctx context.Context, in workflows.SendMailInput) (workflows.SubmitSendResult, error) {
	snd, err := a.Store.GetSendByID(ctx, in.SendID)
	if err != nil {
		return workflows.SubmitSendResult{}, notSent(err)
	}
	atts, err := a.Store.SendAttachments(ctx, in.SendID)
	if err != nil {
		return workflows.SubmitSendResult{}, notSent(err)
	}
	m, err := a.sendingMailbox(ctx, in.SendRef)
	if err != nil {
		return workflows.SubmitSendResult{}, err
	}
	// sendMail carries its files inline: uploaded ones (3 MiB at most
	// together, the API made sure) are read whole.
	for i := range atts {
		if err := m.readWhole(ctx, &atts[i]); err != nil {
			return workflows.SubmitSendResult{}, notSent(err)
		}
	}
	if wait, err := a.takeSlot(ctx, in.SendRef, "", in.Rates, in.Submission); err != nil || !wait.IsZero() {
		return submissionMade(wait, err)
	}
	return m.sendMail(ctx, in.SendID, snd.Message, atts)
}

// WaitingSends pages the sends of a connection, or of one attached
// mailbox, that wait before their submission; the disconnect saga tells
// their workflows to cancel them.
func (a *Activities) WaitingSends(ctx context.Context, in workflows.WaitingSendsInput) (workflows.WaitingSendsResult, error) {
	ids, err := a.Store.WaitingSendIDs(ctx, in.ConnectionID, in.MailboxID, in.After, in.Limit)
	if err != nil {
		return workflows.WaitingSendsResult{}, fmt.Errorf("activities: %w", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return workflows.WaitingSendsResult{IDs: ids}, nil
}

// SendConnectionState reads the connection's state from the registry: a
// send goes only from an active connection, and a send from an attached
// mailbox only while the mailbox is attached.
func (a *Activities) SendConnectionState(ctx context.Context, in workflows.SendStateInput) (workflows.SendConnectionResult, error) {
	row, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if errors.Is(err, store.ErrNotFound) {
		return workflows.SendConnectionResult{State: workflows.StateDisconnected}, nil
	}
	if err != nil {
		return workflows.SendConnectionResult{}, err
	}
	out := workflows.SendConnectionResult{State: row.State}
	if in.MailboxID == "" {
		return out, nil
	}
	m, err := a.Store.GetMailbox(ctx, in.MailboxID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		out.MailboxDetached = true
	case err != nil:
		return workflows.SendConnectionResult{}, err
	default:
		out.MailboxDetached = m.ConnectionID != in.ConnectionID || m.DetachedAt != nil ||
			m.State == workflows.StateDisconnecting || m.State == workflows.StateDisconnected
	}
	return out, nil
}
