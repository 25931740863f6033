package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Send owns one send, from its stamped draft to its copy in Sent Items,
// exactly once in effect (docs/graph.md#ambiguous-send-answers):
//
//  1. PrepareSend looks the send's key up and creates the stamped draft
//     only when the mailbox has none (a retried step finds its draft);
//  2. SubmitSend takes the send's slot in its mailbox's rates and sends
//     the draft with a single attempt: its answer, or its lack of one, is
//     sorted, never acted on by sending again. With no slot free, nothing
//     is sent and the workflow sleeps until the time it was given;
//  3. after an ambiguous answer (a timeout, a reset, a 5xx, a worker
//     killed between the request and its record) the workflow waits for
//     the request to settle and looks for the key in Sent Items, Outbox
//     and Drafts: sent, being sent, or still an unsent draft (the only
//     case in which the draft is submitted again). Found nowhere, the send
//     fails with outcome_unknown rather than risk a second copy;
//  4. an accepted send is followed to Sent Items, whose message ID the
//     send.sent event carries.
func Send(ctx workflow.Context, in SendInput) (SendResult, error) {
	if in.SendID == "" || in.ConnectionID == "" || in.UserID == "" {
		return SendResult{}, temporal.NewNonRetryableApplicationError("a send needs its ID, its connection and its mailbox", "InvalidInput", nil)
	}
	s := &sendRun{
		in:   in,
		opts: in.Options.withDefaults(),
		ref:  SendRef{SendID: in.SendID, ConnectionID: in.ConnectionID, UserID: in.UserID},
		log:  workflow.GetLogger(ctx),
	}
	s.versions(ctx)
	res, err := s.run(ctx)
	if temporal.IsCanceledError(err) {
		return s.canceledByOperator(ctx, err)
	}
	return res, err
}

// versions reads which changes a run was started with. A run given its
// version in its input (SendInput.Version) has every change up to it and
// asks nothing. Before that, a run started since send-versions-at-once
// had them all and recorded one marker for them: each GetVersion that
// records its marker also upserts the TemporalChangeVersion search
// attribute, a write to the server's visibility store, and a send is
// short, so three of them were a sizeable share of what a send costs the
// server. Runs started before it ask each change as they did.
//
// A run of a version this code does not know fails its workflow task, as
// GetVersion does, until a worker that knows it takes it: workers are
// upgraded before the API that starts sends.
func (s *sendRun) versions(ctx workflow.Context) {
	if s.in.Version > SendVersion {
		panic(fmt.Sprintf("a send of workflow version %d needs a newer worker: this one knows up to %d", s.in.Version, SendVersion))
	}
	v := workflow.Version(s.in.Version)
	if v < SendVersion {
		v = workflow.GetVersion(ctx, "send-versions-at-once", workflow.DefaultVersion, 2)
	}
	if v >= 1 {
		s.slotAtSubmit, s.localSteps = true, true
		s.ends = workflow.GetSignalChannel(ctx, SignalSendEnded)
		// Version 2: the submission too runs inside the workflow's task,
		// its number written with its slot (a send without rates, which
		// takes none, submits through an activity).
		s.localSubmit = v == 2 && s.in.Rates.PerMinute > 0
		return
	}
	// Runs started before the change took no slot at submission and ran
	// the registry's steps as activities.
	s.slotAtSubmit = workflow.GetVersion(ctx, "send-slot-at-submit", workflow.DefaultVersion, 1) == 1
	// Runs started before the change let their waits run their course.
	if workflow.GetVersion(ctx, "send-end-signal", workflow.DefaultVersion, 1) == 1 {
		s.ends = workflow.GetSignalChannel(ctx, SignalSendEnded)
	}
	// Runs started before the change ran every Graph step as an activity.
	s.localSteps = workflow.GetVersion(ctx, "send-local-steps", workflow.DefaultVersion, 1) == 1
}

// canceledByOperator records a send whose workflow was canceled (Cancel in
// the Temporal UI): canceled when nothing was submitted yet; after a
// submission, what one look in the mailbox shows (sent, or
// outcome_unknown), never a send again. The workflow still ends canceled.
func (s *sendRun) canceledByOperator(ctx workflow.Context, cause error) (SendResult, error) {
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	if !s.submitted {
		if _, _, err := s.cancel(dctx, ReasonOperatorCanceled); err != nil {
			s.log.Error("a canceled send could not be recorded", "send", s.in.SendID, "err", err)
		}
		return SendResult{}, cause
	}
	loc, err := locateSend.run(dctx, s.ref)
	switch {
	case err == nil && (loc.Found == FoundSentItems || loc.Found == FoundElsewhere || loc.Found == FoundOutbox):
		if loc.Sender != "" {
			s.sender = loc.Sender
		}
		_, err = s.sent(dctx, loc.MessageID)
	default:
		_, err = s.fail(dctx, ReasonOutcomeUnknown, SendReasonText[ReasonOutcomeUnknown]+" Its workflow was canceled after the message was submitted.")
	}
	if err != nil {
		s.log.Error("a canceled send could not be recorded", "send", s.in.SendID, "err", err)
	}
	return SendResult{}, cause
}

type sendRun struct {
	in   SendInput
	opts SendOptions
	ref  SendRef
	log  log.Logger
	// ambiguous: some answer to a submission was ambiguous.
	ambiguous bool
	// sender is the sent copy's sender, from the last look that found it.
	sender string
	// submitted: a request to send the message may have reached Graph.
	submitted bool
	// slotAtSubmit (change send-slot-at-submit, versions.go): the send
	// takes its slot in its mailbox's rates at submission
	// (SubmitSendInput.Rates), and its registry steps (the connection's
	// state, the send's records) run as local activities, inside the
	// workflow's tasks.
	slotAtSubmit bool
	// ends (change send-end-signal) carries the disconnect saga's word
	// that the connection, or the mailbox, is going (SignalSendEnded);
	// nil in runs started before the change. ended is the reason heard.
	ends  workflow.ReceiveChannel
	ended string
	// localSteps (change send-local-steps): the steps that are safe to
	// run again (PrepareSend of a message without large files, and the
	// looks in the mailbox) run as local activities, inside the
	// workflow's tasks: each would otherwise take two trips through the
	// server's task queues, which, thousands of sends at once, are where
	// a send's time goes. The submission stays an activity: the server's
	// record that it started is what makes a worker's death ambiguous
	// rather than a second send.
	localSteps bool
	// localSubmit (change send-versions-at-once, version 2): the
	// submission runs as a local activity too, numbered (submissions):
	// the registry records the number with the send's slot before the
	// request leaves, so a submission run again after its worker died
	// (its task timed out and is replayed) finds its own number and
	// answers ambiguous instead of sending. That record in Postgres
	// stands for the server's record of a started activity. A send then
	// costs the server one workflow task instead of two and an activity.
	localSubmit bool
	// submissions counts the submissions asked for, the number of each.
	submissions int
}

// nextSubmission numbers a submission run as a local activity; zero (no
// number) for one run as an activity, whose start the server records.
func (s *sendRun) nextSubmission() int {
	if !s.localSubmit {
		return 0
	}
	s.submissions++
	return s.submissions
}

// localPrepareBytes: a message with fewer bytes of files than this (no
// upload session, docs/graph.md#upload-sessions) is prepared by a local
// activity.
const localPrepareBytes = 3_000_000

// graphLocal is the options of a send's Graph step run as a local
// activity: retried as graphCall's (a dead token and a refusal are not).
func graphLocal(timeout time.Duration) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout: timeout,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute},
	}
}

// sendBookkeeping runs a send's reads and writes of the registry (a row,
// not Graph) as local activities: each would otherwise cost a trip
// through the server's task queues, several per send.
var sendBookkeeping = workflow.LocalActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
}

func (s *sendRun) run(ctx workflow.Context) (SendResult, error) {
	// Over its mailbox's rates, the send was queued for its time; a
	// disconnect ends the wait at once (the saga's signal), and a long
	// wait (a day's recipients) looks at the connection now and then.
	for wait := s.in.NotBefore.Sub(workflow.Now(ctx)); wait > 0; wait = s.in.NotBefore.Sub(workflow.Now(ctx)) {
		if err := s.sleep(ctx, min(wait, queuedLook)); err != nil {
			return SendResult{}, err
		}
		if res, ended, err := s.gate(ctx); ended || err != nil {
			return res, err
		}
	}
	if res, ended, err := s.gate(ctx); ended || err != nil {
		return res, err
	}
	if s.in.Method == SendBySendMail {
		return s.sendMail(ctx)
	}
	var prep PrepareSendResult
	for {
		var err error
		if s.localSteps && s.in.FileBytes < localPrepareBytes {
			prep, err = prepareSend.runLocal(ctx, graphLocal(prepareTimeout(s.in.FileBytes)), s.ref)
		} else {
			opts := prepareSend.opts
			opts.StartToCloseTimeout = prepareTimeout(s.in.FileBytes)
			prep, err = prepareSend.with(opts).run(ctx, s.ref)
		}
		if isType(err, ErrReauthRequired) {
			if res, ended, err := s.waitReauth(ctx); ended || err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			return s.failFrom(ctx, err)
		}
		break
	}
	switch prep.Found {
	case FoundOutbox, FoundSentItems, FoundElsewhere:
		// A run before this one sent it (the workflow was reset or started
		// again for the same key): follow it to Sent Items.
		return s.confirm(ctx, prep.DraftID, true)
	}
	if !s.slotAtSubmit {
		if err := s.record(ctx, RecordSendInput{State: SendSending, DraftID: prep.DraftID}); err != nil {
			return SendResult{}, err
		}
	}
	// Taking the slot records the draft and the state sending.
	return s.submit(ctx, prep.DraftID)
}

// submit sends the draft and sorts the answer; it submits again only a
// draft the mailbox still shows unsent after the last request settled.
func (s *sendRun) submit(ctx workflow.Context, draftID string) (SendResult, error) {
	giveUp := workflow.Now(ctx).Add(s.opts.LookFor)
	for {
		// Nothing goes from a connection disconnected meanwhile.
		if res, ended, err := s.gate(ctx); ended || err != nil {
			return res, err
		}
		was := s.submitted
		s.submitted = true
		in := SubmitSendInput{SendRef: s.ref, DraftID: draftID, Submission: s.nextSubmission()}
		if s.slotAtSubmit {
			in.Rates = s.in.Rates
		}
		res, err := either(ctx, s.localSubmit, submitSend, in)
		if s.slotAtSubmit && (isType(err, ErrReauthRequired) || isType(err, ErrNotSent) || err == nil && !res.WaitUntil.IsZero()) {
			s.submitted = was // nothing left for Graph
		}
		if err == nil && !res.WaitUntil.IsZero() {
			// No slot in the mailbox's rates now: its time was recorded
			// (not_before), and the send is submitted then.
			from := workflow.Now(ctx)
			if res, ended, err := s.waitTurn(ctx, res.WaitUntil); ended || err != nil {
				return res, err
			}
			giveUp = giveUp.Add(workflow.Now(ctx).Sub(from))
			continue
		}
		switch {
		case isType(err, ErrSendRefused):
			return s.failFrom(ctx, err)
		case isType(err, ErrReauthRequired), isType(err, ErrNotSent):
			// The token died, or the request never left: nothing was sent.
			if isType(err, ErrReauthRequired) {
				if res, ended, err := s.waitReauth(ctx); ended || err != nil {
					return res, err
				}
			} else if err := workflow.Sleep(ctx, s.opts.Settle); err != nil {
				return SendResult{}, err
			}
			if !workflow.Now(ctx).Before(giveUp) {
				return s.fail(ctx, ReasonNotSubmitted, "")
			}
			continue
		case err == nil && res.Accepted:
			return s.confirm(ctx, draftID, true)
		case err == nil && res.NotADraft:
			return s.confirm(ctx, draftID, false)
		}
		// Ambiguous: Graph's answer, or the activity's failure (a worker
		// killed mid-request times out), says nothing of the message.
		s.ambiguous = true
		detail := res.Detail
		if err != nil {
			detail = err.Error()
		}
		s.log.Warn("ambiguous answer to a send; looking in the mailbox", "send", s.in.SendID, "detail", detail)
		if err := workflow.Sleep(ctx, s.opts.Settle); err != nil {
			return SendResult{}, err
		}
		loc, err := s.locate(ctx, giveUp)
		if err != nil {
			return s.fail(ctx, ReasonOutcomeUnknown, "")
		}
		switch loc.Found {
		case FoundSentItems, FoundElsewhere:
			return s.sent(ctx, loc.MessageID)
		case FoundOutbox:
			return s.confirm(ctx, draftID, true)
		case FoundNowhere:
			return s.fail(ctx, ReasonOutcomeUnknown, "")
		}
		// Still an unsent draft: it was not submitted, and may be now.
		if !workflow.Now(ctx).Before(giveUp) {
			return s.fail(ctx, ReasonNotSubmitted, "")
		}
	}
}

// sendMail sends a send-only connection's message in one request. With
// nothing to look in, an ambiguous answer is outcome_unknown.
func (s *sendRun) sendMail(ctx workflow.Context) (SendResult, error) {
	giveUp := workflow.Now(ctx).Add(s.opts.LookFor)
	for {
		if res, ended, err := s.gate(ctx); ended || err != nil {
			return res, err
		}
		if !s.slotAtSubmit {
			if err := s.record(ctx, RecordSendInput{State: SendSending}); err != nil {
				return SendResult{}, err
			}
		}
		was := s.submitted
		s.submitted = true
		in := SendMailInput{SendRef: s.ref, Submission: s.nextSubmission()}
		if s.slotAtSubmit {
			in.Rates = s.in.Rates
		}
		res, err := either(ctx, s.localSubmit, sendMailOnce, in)
		if s.slotAtSubmit && (isType(err, ErrReauthRequired) || isType(err, ErrNotSent) || err == nil && !res.WaitUntil.IsZero()) {
			s.submitted = was
		}
		if err == nil && !res.WaitUntil.IsZero() {
			from := workflow.Now(ctx)
			if res, ended, err := s.waitTurn(ctx, res.WaitUntil); ended || err != nil {
				return res, err
			}
			giveUp = giveUp.Add(workflow.Now(ctx).Sub(from))
			continue
		}
		switch {
		case err == nil && res.Accepted:
			return s.sent(ctx, "")
		case isType(err, ErrSendRefused):
			return s.failFrom(ctx, err)
		case isType(err, ErrReauthRequired):
			if res, ended, err := s.waitReauth(ctx); ended || err != nil {
				return res, err
			}
		case isType(err, ErrNotSent):
			if err := workflow.Sleep(ctx, s.opts.Settle); err != nil {
				return SendResult{}, err
			}
		default:
			return s.fail(ctx, ReasonOutcomeUnknown, SendReasonText[ReasonOutcomeUnknown]+" A send-only connection cannot look in the mailbox.")
		}
		if !workflow.Now(ctx).Before(giveUp) {
			return s.fail(ctx, ReasonNotSubmitted, "")
		}
	}
}

// gate lets the send go on only from an active connection: one being
// disconnected or gone cancels it (ended), one waiting for a new sign-in
// holds it in reauth_required until it is active again.
func (s *sendRun) gate(ctx workflow.Context) (SendResult, bool, error) {
	held := false
	for i := 0; ; i++ {
		if s.heardEnd() {
			return s.cancel(ctx, s.ended)
		}
		st, err := s.connection(ctx)
		if err != nil {
			return SendResult{}, true, err
		}
		switch {
		case st.State == StateDisconnecting, st.State == StateDisconnected:
			return s.cancel(ctx, ReasonConnectionEnded)
		case st.MailboxDetached:
			return s.cancel(ctx, ReasonMailboxDetached)
		}
		switch st.State {
		case StateActive:
			if held {
				if err := s.record(ctx, RecordSendInput{State: s.resumed()}); err != nil {
					return SendResult{}, true, err
				}
			}
			return SendResult{}, false, nil
		}
		if !held {
			if err := s.record(ctx, RecordSendInput{State: SendReauthRequired}); err != nil {
				return SendResult{}, true, err
			}
			held = true
		}
		if err := s.sleep(ctx, min(lookBackoff(i+4), s.opts.ReauthPoll)); err != nil {
			return SendResult{}, true, err
		}
	}
}

// sleep waits for d, or until the disconnect saga says the connection (or
// the mailbox) is going, whichever comes first; the gate that follows
// every wait then cancels the send. Runs started before the change
// (send-end-signal) sleep d.
func (s *sendRun) sleep(ctx workflow.Context, d time.Duration) error {
	if s.ends == nil {
		return workflow.Sleep(ctx, d)
	}
	if s.heardEnd() {
		return nil
	}
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var err error
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(workflow.NewTimer(tctx, d), func(f workflow.Future) { err = f.Get(ctx, nil) })
	sel.AddReceive(s.ends, func(c workflow.ReceiveChannel, _ bool) {
		var sig SendEndedSignal
		c.Receive(ctx, &sig)
		s.heard(sig)
	})
	sel.Select(ctx)
	if s.ended != "" {
		return nil
	}
	return err
}

// heardEnd reports whether the saga said the connection (or the mailbox)
// is going, reading any word of it not read yet.
func (s *sendRun) heardEnd() bool {
	if s.ends == nil {
		return false
	}
	for {
		var sig SendEndedSignal
		if !s.ends.ReceiveAsync(&sig) {
			return s.ended != ""
		}
		s.heard(sig)
	}
}

func (s *sendRun) heard(sig SendEndedSignal) {
	if s.ended != "" {
		return
	}
	switch sig.Reason {
	case ReasonMailboxDetached:
		s.ended = sig.Reason
	default:
		s.ended = ReasonConnectionEnded
	}
}

// connection reads the state of the send's connection (and mailbox).
func (s *sendRun) connection(ctx workflow.Context) (SendConnectionResult, error) {
	in := SendStateInput{ConnectionID: s.in.ConnectionID, MailboxID: s.in.MailboxID}
	if s.slotAtSubmit {
		return sendConnection.runLocal(ctx, sendBookkeeping, in)
	}
	return sendConnection.run(ctx, in)
}

// resumed is the state of a send that was held for a new sign-in and goes
// on: queued until a request may have reached Graph, sending after.
func (s *sendRun) resumed() string {
	if s.slotAtSubmit && !s.submitted {
		return SendQueued
	}
	return SendSending
}

// waitTurn sleeps until the time the mailbox's rates gave the send; a long
// wait looks at the connection now and then, so a disconnect cancels it
// when it happens.
func (s *sendRun) waitTurn(ctx workflow.Context, until time.Time) (SendResult, bool, error) {
	for wait := until.Sub(workflow.Now(ctx)); wait > 0; wait = until.Sub(workflow.Now(ctx)) {
		if err := s.sleep(ctx, min(wait, queuedLook)); err != nil {
			return SendResult{}, true, err
		}
		if until.After(workflow.Now(ctx)) || s.heardEnd() {
			if res, ended, err := s.gate(ctx); ended || err != nil {
				return res, ended, err
			}
		}
	}
	return SendResult{}, false, nil
}

// waitReauth holds a send whose token died until the connection is
// active again (after a new sign-in), or cancels it.
func (s *sendRun) waitReauth(ctx workflow.Context) (SendResult, bool, error) {
	if err := s.record(ctx, RecordSendInput{State: SendReauthRequired}); err != nil {
		return SendResult{}, true, err
	}
	if err := s.sleep(ctx, s.opts.ReauthPoll); err != nil {
		return SendResult{}, true, err
	}
	return s.gate(ctx)
}

func (s *sendRun) cancel(ctx workflow.Context, reason string) (SendResult, bool, error) {
	text := SendReasonText[reason]
	err := s.record(ctx, RecordSendInput{State: SendCanceled, Reason: reason, ReasonText: text,
		Events: []EventRecord{{ID: s.in.SendID + ":failed", Type: EventSendFailed,
			Data: map[string]any{"send_id": s.in.SendID, "state": SendCanceled, "reason": reason, "detail": text}}}})
	if err != nil {
		return SendResult{}, true, err
	}
	return SendResult{State: SendCanceled, Reason: reason}, true, nil
}

// confirm follows a submitted draft to Sent Items. accepted says Graph
// answered 202; otherwise Graph said the draft was no draft any more.
func (s *sendRun) confirm(ctx workflow.Context, draftID string, accepted bool) (SendResult, error) {
	start := workflow.Now(ctx)
	for i := 0; ; i++ {
		loc, err := s.locate(ctx, start.Add(s.opts.LookFor))
		if err != nil {
			if accepted {
				return s.sent(ctx, draftID)
			}
			return s.fail(ctx, ReasonOutcomeUnknown, "")
		}
		waited := workflow.Now(ctx).Sub(start) >= s.opts.SentItemsWait
		switch loc.Found {
		case FoundSentItems, FoundElsewhere:
			return s.sent(ctx, loc.MessageID)
		case FoundNowhere:
			switch {
			case accepted:
				// Accepted and not kept (or deleted from Sent Items at once).
				return s.sent(ctx, "")
			case s.ambiguous:
				return s.fail(ctx, ReasonOutcomeUnknown, "")
			default:
				return s.fail(ctx, ReasonDraftGone, "")
			}
		case FoundOutbox:
			if waited {
				// Accepted, still being submitted: its ID will not change.
				return s.sent(ctx, loc.MessageID)
			}
		case FoundDrafts:
			if waited {
				if accepted {
					return s.sent(ctx, "")
				}
				return s.fail(ctx, ReasonOutcomeUnknown, "")
			}
		}
		if err := workflow.Sleep(ctx, lookBackoff(i)); err != nil {
			return SendResult{}, err
		}
	}
}

// locate looks for the send's key, retrying Graph until giveUp.
func (s *sendRun) locate(ctx workflow.Context, giveUp time.Time) (LocateSendResult, error) {
	var loc LocateSendResult
	var err error
	if s.localSteps {
		opts := graphLocal(locateSend.opts.StartToCloseTimeout)
		opts.ScheduleToCloseTimeout = max(giveUp.Sub(workflow.Now(ctx)), time.Minute)
		loc, err = locateSend.runLocal(ctx, opts, s.ref)
	} else {
		opts := locateSend.opts
		opts.ScheduleToCloseTimeout = max(giveUp.Sub(workflow.Now(ctx)), time.Minute)
		loc, err = locateSend.with(opts).run(ctx, s.ref)
	}
	if loc.Sender != "" {
		s.sender = loc.Sender
	}
	return loc, err
}

// queuedLook is how often a queued send looks at its connection.
const queuedLook = 5 * time.Minute

// lookBackoff is the wait before the n-th look for a submitted message.
func lookBackoff(n int) time.Duration {
	return min(time.Duration(1<<min(n, 6))*time.Second, time.Minute)
}

func (s *sendRun) sent(ctx workflow.Context, messageID string) (SendResult, error) {
	data := map[string]any{"send_id": s.in.SendID}
	if messageID != "" {
		data["message_id"] = messageID
	}
	if s.sender != "" {
		data["sender"] = s.sender
	}
	err := s.record(ctx, RecordSendInput{State: SendSent, MessageID: messageID, Sender: s.sender,
		Events: []EventRecord{{ID: s.in.SendID + ":sent", Type: EventSendSent, Data: data}}})
	if err != nil {
		return SendResult{}, err
	}
	return SendResult{State: SendSent, MessageID: messageID}, nil
}

func (s *sendRun) fail(ctx workflow.Context, reason, text string) (SendResult, error) {
	if text == "" {
		text = SendReasonText[reason]
	}
	s.log.Warn("send failed", "send", s.in.SendID, "reason", reason)
	err := s.record(ctx, RecordSendInput{State: SendFailed, Reason: reason, ReasonText: text,
		Events: []EventRecord{{ID: s.in.SendID + ":failed", Type: EventSendFailed,
			Data: map[string]any{"send_id": s.in.SendID, "state": SendFailed, "reason": reason, "detail": text}}}})
	if err != nil {
		return SendResult{}, err
	}
	return SendResult{State: SendFailed, Reason: reason}, nil
}

// failFrom fails the send with the reason an activity's error carries.
func (s *sendRun) failFrom(ctx workflow.Context, err error) (SendResult, error) {
	if d, ok := errorDetail(err); ok {
		return s.fail(ctx, d.Reason, d.Text)
	}
	var canceled *temporal.CanceledError
	if errors.As(err, &canceled) {
		return SendResult{}, err
	}
	return s.fail(ctx, ReasonGraphRefused, SendReasonText[ReasonGraphRefused]+" "+rootMessage(err))
}

func (s *sendRun) record(ctx workflow.Context, in RecordSendInput) error {
	in.SendID, in.ConnectionID = s.in.SendID, s.in.ConnectionID
	var err error
	if s.slotAtSubmit {
		_, err = recordSend.runLocal(ctx, sendBookkeeping, in)
	} else {
		_, err = recordSend.run(ctx, in)
	}
	return err
}

// isType reports an application error of the given type.
func isType(err error, typ string) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == typ
}

// rootMessage is the innermost message of an activity's error.
func rootMessage(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err.Error()
		}
		err = next
	}
}
