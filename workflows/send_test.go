package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// fakeMailbox models what Graph does with one send's draft, so that the
// workflow's decisions can be checked against what was delivered: where
// the stamped item is (nowhere, drafts, outbox, sentitems), how many
// drafts were created and how many copies went.
type fakeMailbox struct {
	mu        *sync.Mutex
	where     string
	created   int
	delivered int
	// submits scripts the answers to the draft's sends, in order (ok when
	// the script is exhausted): ok, retry-after, delivered-504,
	// delivered-reset, killed-after (the message went, the worker died
	// before recording the answer), lost-504, killed-before, blocked.
	submits []string
	// submitted counts requests to send the draft.
	submitted int
	// createLost loses the answers of that many draft creations (the
	// draft was created all the same).
	createLost int
	// outboxLooks keeps a submitted message in Outbox for that many looks.
	outboxLooks int
	// lookFails fails that many looks; deleteAfterSubmit deletes the item
	// once it is submitted (a user, or a rule).
	lookFails         int
	deleteAfterSubmit bool
	records           []RecordSendInput
	// states are the connection's states the send's checks read, in
	// order (active when exhausted).
	states []string
	// method is how the workflow sends.
	method string
	// sender is the sent copy's sender the looks report.
	sender string
	// slotWaits answers the first submissions, in order: with a slot free
	// (0), or with none for that long (nothing is sent).
	slotWaits []time.Duration
	// unrated counts submissions that came without the mailbox's rates;
	// unnumbered those that came without their number (Submission).
	unrated, unnumbered int
	// version is the send workflow's version the run is given
	// (SendInput.Version); zero asks GetVersion.
	version int
	// numbers are the submissions' numbers recorded, by send (the
	// registry's record of each with its slot).
	numbers map[SendRef]map[int]bool
	now     func() time.Time
}

// recorded answers a numbered submission made before, as the registry
// does (store.ErrSubmissionMade), and records a new one (the caller holds
// mu).
func (m *fakeMailbox) recorded(ref SendRef, n int) bool {
	if n == 0 {
		m.unnumbered++
		return false
	}
	if m.numbers[ref][n] {
		return true
	}
	if m.numbers == nil {
		m.numbers = map[SendRef]map[int]bool{}
	}
	if m.numbers[ref] == nil {
		m.numbers[ref] = map[int]bool{}
	}
	m.numbers[ref][n] = true
	return false
}

// madeBefore is the answer to a submission whose number was recorded.
var madeBefore = SubmitSendResult{Ambiguous: true, Detail: "this submission was made before"}

// noSlot answers a submission when the mailbox's rates have no slot for
// it (the caller holds mu).
func (m *fakeMailbox) noSlot(rates SendRates) (SubmitSendResult, bool) {
	if rates.PerMinute == 0 {
		m.unrated++
	}
	if len(m.slotWaits) == 0 {
		return SubmitSendResult{}, false
	}
	wait := m.slotWaits[0]
	m.slotWaits = m.slotWaits[1:]
	if wait == 0 {
		return SubmitSendResult{}, false
	}
	return SubmitSendResult{WaitUntil: m.now().Add(wait)}, true
}

// mailboxDetached, among fakeMailbox.states, is an active connection whose
// attached mailbox was detached.
const mailboxDetached = "mailbox-detached"

// nextSubmit is how the next submission is answered (the caller holds mu).
func (m *fakeMailbox) nextSubmit() string {
	if len(m.submits) == 0 {
		return "ok"
	}
	answer := m.submits[0]
	m.submits = m.submits[1:]
	return answer
}

func (m *fakeMailbox) deliver() {
	m.delivered++
	m.where = FoundSentItems
	if m.outboxLooks > 0 {
		m.where = FoundOutbox
	}
	if m.deleteAfterSubmit {
		m.where = FoundNowhere
	}
}

// refusal is an activity's refusal as the activities package builds it.
func refusal(reason string) error {
	return temporal.NewNonRetryableApplicationError("Graph refused", ErrSendRefused, nil,
		struct{ Reason, Text string }{reason, SendReasonText[reason]})
}

func (m *fakeMailbox) register(env *testsuite.TestWorkflowEnvironment) {
	m.registerOn(env, env.Now)
}

// sendRegistry is what fakeMailbox registers on: a test environment or a
// worker.
type sendRegistry interface {
	RegisterWorkflow(w any)
	RegisterActivityWithOptions(a any, options activity.RegisterOptions)
}

func (m *fakeMailbox) registerOn(env sendRegistry, now func() time.Time) {
	m.mu = &sync.Mutex{}
	m.now = now
	env.RegisterWorkflow(Send)
	env.RegisterActivityWithOptions(func(ctx context.Context, in SendRef) (PrepareSendResult, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.where != FoundNowhere {
			return PrepareSendResult{DraftID: "draft-1", Found: m.where}, nil
		}
		m.where, m.created = FoundDrafts, m.created+1
		if m.createLost > 0 {
			m.createLost--
			return PrepareSendResult{}, errors.New("connection reset by peer")
		}
		return PrepareSendResult{DraftID: "draft-1"}, nil
	}, activity.RegisterOptions{Name: ActivityPrepareSend})
	var submit func(in SubmitSendInput) (SubmitSendResult, error)
	submit = func(in SubmitSendInput) (SubmitSendResult, error) {
		if res, wait := m.noSlot(in.Rates); wait {
			return res, nil
		}
		if m.recorded(in.SendRef, in.Submission) {
			return madeBefore, nil
		}
		m.submitted++
		answer := m.nextSubmit()
		switch answer {
		case "blocked":
			return SubmitSendResult{}, refusal(ReasonSubmissionBlock)
		case "token-dead":
			return SubmitSendResult{}, temporal.NewNonRetryableApplicationError("sign in again", ErrReauthRequired, nil,
				struct{ Reason, Text string }{"invalid_grant", "the refresh token was revoked"})
		case "vault-down":
			return SubmitSendResult{}, temporal.NewApplicationError("nothing was sent", ErrNotSent)
		}
		if m.where != FoundDrafts {
			// A draft is sent once: Graph refuses an item that is no draft.
			return SubmitSendResult{NotADraft: true}, nil
		}
		switch answer {
		case "ok", "retry-after":
			m.deliver()
			return SubmitSendResult{Accepted: true}, nil
		case "delivered-504", "delivered-reset":
			m.deliver()
			return SubmitSendResult{Ambiguous: true, Detail: answer}, nil
		case "killed-after":
			m.deliver()
			return SubmitSendResult{}, errors.New("activity timed out: the worker died")
		case "killed-after-rerun":
			// The message went and the worker died in the local activity:
			// its task is replayed elsewhere and runs it again.
			m.deliver()
			return submit(in)
		case "killed-before-rerun":
			// The worker died after the slot was taken, before the
			// request left: the submission run again finds its number.
			return submit(in)
		case "lost-504":
			return SubmitSendResult{Ambiguous: true, Detail: answer}, nil
		case "killed-before":
			return SubmitSendResult{}, errors.New("activity timed out: the worker died")
		}
		panic("unknown answer " + answer)
	}
	env.RegisterActivityWithOptions(func(ctx context.Context, in SubmitSendInput) (SubmitSendResult, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return submit(in)
	}, activity.RegisterOptions{Name: ActivitySubmitSend})
	env.RegisterActivityWithOptions(func(ctx context.Context, in SendRef) (LocateSendResult, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.lookFails > 0 {
			m.lookFails--
			return LocateSendResult{}, errors.New("Graph answered 503")
		}
		out := LocateSendResult{Found: m.where}
		if m.where != FoundNowhere {
			out.MessageID = "draft-1"
		}
		if m.where == FoundSentItems {
			out.Sender = m.sender
		}
		if m.where == FoundOutbox {
			if m.outboxLooks--; m.outboxLooks <= 0 {
				m.where = FoundSentItems
			}
		}
		return out, nil
	}, activity.RegisterOptions{Name: ActivityLocateSend})
	env.RegisterActivityWithOptions(func(ctx context.Context, in SendStateInput) (SendConnectionResult, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		st := StateActive
		if len(m.states) > 0 {
			st, m.states = m.states[0], m.states[1:]
		}
		if st == mailboxDetached {
			return SendConnectionResult{State: StateActive, MailboxDetached: in.MailboxID != ""}, nil
		}
		return SendConnectionResult{State: st}, nil
	}, activity.RegisterOptions{Name: ActivitySendConnectionState})
	env.RegisterActivityWithOptions(func(ctx context.Context, in SendMailInput) (SubmitSendResult, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if res, wait := m.noSlot(in.Rates); wait {
			return res, nil
		}
		if m.recorded(in.SendRef, in.Submission) {
			return madeBefore, nil
		}
		m.submitted++
		answer := m.nextSubmit()
		switch answer {
		case "killed-after-rerun":
			m.delivered++
			m.recorded(in.SendRef, in.Submission)
			return madeBefore, nil
		case "ok":
			m.delivered++
			return SubmitSendResult{Accepted: true}, nil
		case "delivered-504":
			m.delivered++
			return SubmitSendResult{Ambiguous: true}, nil
		case "lost-504":
			return SubmitSendResult{Ambiguous: true}, nil
		case "vault-down":
			return SubmitSendResult{}, temporal.NewApplicationError("nothing was sent", ErrNotSent)
		case "token-dead":
			return SubmitSendResult{}, temporal.NewNonRetryableApplicationError("sign in again", ErrReauthRequired, nil)
		case "blocked":
			return SubmitSendResult{}, refusal(ReasonSubmissionBlock)
		}
		panic("unknown answer " + answer)
	}, activity.RegisterOptions{Name: ActivitySendMailOnce})
	env.RegisterActivityWithOptions(func(ctx context.Context, in RecordSendInput) error {
		m.mu.Lock()
		defer m.mu.Unlock()
		m.records = append(m.records, in)
		return nil
	}, activity.RegisterOptions{Name: ActivityRecordSend})
}

// onSubmit calls f as each submission starts, an activity (runs started
// before send-versions-at-once version 2) or a local one.
func onSubmit(env *testsuite.TestWorkflowEnvironment, f func()) {
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == ActivitySubmitSend {
			f()
		}
	})
	env.SetOnLocalActivityStartedListener(func(_ *activity.Info, _ context.Context, args []any) {
		if _, ok := args[0].(SubmitSendInput); ok {
			f()
		}
	})
}

// testRates are Exchange Online's.
var testRates = SendRates{PerMinute: 30, DailyRecipients: 10000}

func runSend(t *testing.T, m *fakeMailbox, opts SendOptions) SendResult {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m.register(env)
	in := SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Options: opts, Method: m.method, Rates: testRates, Version: m.version}
	if m.sender != "" || slices.Contains(m.states, mailboxDetached) {
		in.MailboxID, in.UserID = "mbx_shared01", "u-shared"
	}
	env.ExecuteWorkflow(Send, in)
	if !env.IsWorkflowCompleted() {
		t.Fatal("the send workflow did not complete")
	}
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("workflow error: %v", err)
	}
	var res SendResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSendExactlyOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    fakeMailbox
		opts SendOptions
		// want: the final state and reason, the copies delivered, the
		// draft's send requests and drafts created.
		state, reason       string
		delivered, requests int
		created             int
	}{
		{name: "accepted", state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "202 with Retry-After", m: fakeMailbox{submits: []string{"retry-after"}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "accepted, the copy waits in Outbox", m: fakeMailbox{outboxLooks: 3}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "delivered, then 504", m: fakeMailbox{submits: []string{"delivered-504"}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "delivered, then reset, copy in Outbox", m: fakeMailbox{submits: []string{"delivered-reset"}, outboxLooks: 2}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "worker killed after the request", m: fakeMailbox{submits: []string{"killed-after"}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "504, not delivered: the draft is sent after looking", m: fakeMailbox{submits: []string{"lost-504"}}, state: SendSent, delivered: 1, requests: 2, created: 1},
		{name: "worker killed before the request", m: fakeMailbox{submits: []string{"killed-before", "lost-504"}}, state: SendSent, delivered: 1, requests: 3, created: 1},
		{name: "worker killed after the request, the submission run again", m: fakeMailbox{submits: []string{"killed-after-rerun"}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "worker killed with its slot taken, the submission run again", m: fakeMailbox{submits: []string{"killed-before-rerun"}}, state: SendSent, delivered: 1, requests: 2, created: 1},
		{name: "the draft's creation answer lost", m: fakeMailbox{createLost: 2}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "already sent by an earlier run", m: fakeMailbox{where: FoundSentItems}, state: SendSent, delivered: 0, requests: 0, created: 0},
		{name: "blocked from sending", m: fakeMailbox{submits: []string{"blocked"}}, state: SendFailed, reason: ReasonSubmissionBlock, delivered: 0, requests: 1, created: 1},
		{name: "ambiguous, and the item gone", m: fakeMailbox{submits: []string{"delivered-504"}, deleteAfterSubmit: true}, state: SendFailed, reason: ReasonOutcomeUnknown, delivered: 1, requests: 1, created: 1},
		{name: "ambiguous, and the mailbox unreadable", m: fakeMailbox{submits: []string{"delivered-504"}, lookFails: 1 << 20}, opts: SendOptions{LookFor: time.Hour},
			state: SendFailed, reason: ReasonOutcomeUnknown, delivered: 1, requests: 1, created: 1},
		{name: "token died before the request: waits for a new sign-in", m: fakeMailbox{submits: []string{"token-dead"}, states: []string{StateActive, StateActive, StateReauthRequired, StateReauthRequired}},
			state: SendSent, delivered: 1, requests: 2, created: 1},
		{name: "Vault down before the request", m: fakeMailbox{submits: []string{"vault-down"}}, state: SendSent, delivered: 1, requests: 2, created: 1},
		{name: "connection waiting for a sign-in first", m: fakeMailbox{states: []string{StateReauthRequired, StateReauthRequired}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "disconnected before it went", m: fakeMailbox{states: []string{StateDisconnecting}}, state: SendCanceled, reason: ReasonConnectionEnded, delivered: 0, requests: 0, created: 0},
		{name: "disconnected after the draft, before the send", m: fakeMailbox{states: []string{StateActive, StateDisconnected}}, state: SendCanceled, reason: ReasonConnectionEnded, delivered: 0, requests: 0, created: 1},
		{name: "disconnected while the token was dead", m: fakeMailbox{submits: []string{"token-dead"}, states: []string{StateActive, StateActive, StateDisconnecting}},
			state: SendCanceled, reason: ReasonConnectionEnded, delivered: 0, requests: 1, created: 1},
		{name: "from an attached mailbox, as it", m: fakeMailbox{sender: "shared@contoso.example"}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "from an attached mailbox, detached before the send", m: fakeMailbox{states: []string{StateActive, mailboxDetached}},
			state: SendCanceled, reason: ReasonMailboxDetached, delivered: 0, requests: 0, created: 1},
		{name: "from an attached mailbox, detached while queued", m: fakeMailbox{states: []string{mailboxDetached}},
			state: SendCanceled, reason: ReasonMailboxDetached, delivered: 0, requests: 0, created: 0},
		{name: "send-only: accepted", m: fakeMailbox{method: SendBySendMail}, state: SendSent, delivered: 1, requests: 1},
		{name: "send-only: 504 cannot be looked into", m: fakeMailbox{method: SendBySendMail, submits: []string{"delivered-504"}}, state: SendFailed, reason: ReasonOutcomeUnknown, delivered: 1, requests: 1},
		{name: "send-only: lost 504 is not sent again either", m: fakeMailbox{method: SendBySendMail, submits: []string{"lost-504"}}, state: SendFailed, reason: ReasonOutcomeUnknown, delivered: 0, requests: 1},
		{name: "send-only: nothing left before the token", m: fakeMailbox{method: SendBySendMail, submits: []string{"vault-down", "token-dead"}}, state: SendSent, delivered: 1, requests: 3},
		{name: "send-only: blocked", m: fakeMailbox{method: SendBySendMail, submits: []string{"blocked"}}, state: SendFailed, reason: ReasonSubmissionBlock, requests: 1},
		{name: "send-only: worker killed after the request, run again", m: fakeMailbox{method: SendBySendMail, submits: []string{"killed-after-rerun"}}, state: SendFailed, reason: ReasonOutcomeUnknown, delivered: 1, requests: 1},
		{name: "no slot free: sent at its time", m: fakeMailbox{slotWaits: []time.Duration{70 * time.Second}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "504, not delivered, and no slot free for the second try", m: fakeMailbox{submits: []string{"lost-504"}, slotWaits: []time.Duration{0, 40 * time.Second, 5 * time.Second}},
			state: SendSent, delivered: 1, requests: 2, created: 1},
		{name: "no slot free for six hours and more", m: fakeMailbox{slotWaits: []time.Duration{7 * time.Hour}}, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "send-only: no slot free", m: fakeMailbox{method: SendBySendMail, slotWaits: []time.Duration{time.Minute}}, state: SendSent, delivered: 1, requests: 1},
		{name: "never taken", m: fakeMailbox{submits: []string{"lost-504", "lost-504", "lost-504", "lost-504", "lost-504"}}, opts: SendOptions{Settle: time.Minute, LookFor: 3 * time.Minute},
			state: SendFailed, reason: ReasonNotSubmitted, delivered: 0, requests: 3, created: 1},
	} {
		for _, version := range []int{0, SendVersion} {
			name := tc.name
			if version > 0 {
				name += ", given its version"
			}
			t.Run(name, func(t *testing.T) {
				m := tc.m
				m.version = version
				res := runSend(t, &m, tc.opts)
				if res.State != tc.state || res.Reason != tc.reason {
					t.Errorf("ended %s %q, want %s %q", res.State, res.Reason, tc.state, tc.reason)
				}
				if m.unrated > 0 || m.unnumbered > 0 {
					t.Errorf("%d submissions without the mailbox's rates, %d without their number", m.unrated, m.unnumbered)
				}
				if m.delivered != tc.delivered || m.submitted != tc.requests || m.created != tc.created {
					t.Errorf("delivered %d, send requests %d, drafts created %d; want %d, %d, %d",
						m.delivered, m.submitted, m.created, tc.delivered, tc.requests, tc.created)
				}
				held := false
				for _, r := range m.records {
					held = held || r.State == SendReauthRequired
				}
				if wantHeld := slices.Contains(tc.m.states, StateReauthRequired) || slices.Contains(tc.m.submits, "token-dead"); held != wantHeld {
					t.Errorf("held in reauth_required: %v, want %v", held, wantHeld)
				}
				last := m.records[len(m.records)-1]
				if last.State != tc.state || len(last.Events) != 1 {
					t.Fatalf("last record %+v", last)
				}
				ev := last.Events[0]
				switch tc.state {
				case SendSent:
					want := "draft-1"
					if tc.m.method == SendBySendMail {
						want = ""
					}
					if ev.Type != EventSendSent || ev.ID != "snd_1:sent" || last.MessageID != want || (want != "" && ev.Data["message_id"] != want) {
						t.Errorf("sent event %+v, record %+v", ev, last)
					}
					if last.Sender != tc.m.sender || (tc.m.sender != "" && ev.Data["sender"] != tc.m.sender) {
						t.Errorf("sender recorded %q (event %v), want %q", last.Sender, ev.Data["sender"], tc.m.sender)
					}
				case SendFailed, SendCanceled:
					if ev.Type != EventSendFailed || ev.Data["reason"] != tc.reason || ev.Data["state"] != last.State || last.ReasonText == "" {
						t.Errorf("failed event %+v, record %+v", ev, last)
					}
				}
			})
		}
	}
}

// TestSendGivenANewerVersion: a send of a version this code does not know
// fails its workflow task (a newer worker takes it), as GetVersion does.
func TestSendGivenANewerVersion(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := &fakeMailbox{}
	m.register(env)
	env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Rates: testRates, Version: SendVersion + 1})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "needs a newer worker") {
		t.Errorf("a send of a newer version: %v", err)
	}
	if m.created != 0 || m.submitted != 0 {
		t.Errorf("it went on: %d drafts, %d submissions", m.created, m.submitted)
	}
}

// TestSendWithoutRatesSubmitsThroughAnActivity: a send that takes no slot
// (no rates) has nothing to write its submission's number with, so it
// submits through an activity, unnumbered, whatever its version.
func TestSendWithoutRatesSubmitsThroughAnActivity(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := &fakeMailbox{}
	m.register(env)
	activities := 0
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == ActivitySubmitSend {
			activities++
		}
	})
	env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Version: SendVersion})
	var res SendResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State != SendSent {
		t.Fatalf("ended %+v %v", res, err)
	}
	if activities != 1 || m.unnumbered != 1 || m.submitted != 1 {
		t.Errorf("%d submissions as activities, %d unnumbered, %d in all; want 1, 1, 1", activities, m.unnumbered, m.submitted)
	}
}

// TestSendSettlesBeforeLooking: after an ambiguous answer the workflow
// waits Settle before it looks, so a request still under way at Graph is
// not taken for a draft left unsent.
func TestSendSettlesBeforeLooking(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := &fakeMailbox{submits: []string{"lost-504"}}
	m.register(env)
	var submits []time.Time
	onSubmit(env, func() { submits = append(submits, env.Now()) })
	env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", Options: SendOptions{Settle: 45 * time.Second}})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(submits) != 2 || submits[1].Sub(submits[0]) < 45*time.Second {
		t.Errorf("submits at %v, want two 45 s apart", submits)
	}
}

// TestSendWaitsForItsTime: a send queued over its mailbox's rates
// creates nothing before its time.
func TestSendWaitsForItsTime(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := &fakeMailbox{}
	m.register(env)
	start := env.Now()
	var prepared time.Time
	// PrepareSend, a local activity (send-local-steps): the first step
	// that takes the send's reference.
	env.SetOnLocalActivityStartedListener(func(_ *activity.Info, _ context.Context, args []any) {
		if _, ok := args[0].(SendRef); ok && prepared.IsZero() {
			prepared = env.Now()
		}
	})
	env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", NotBefore: start.Add(90 * time.Second)})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if prepared.Sub(start) < 90*time.Second || m.delivered != 1 {
		t.Errorf("prepared %v after the start, %d delivered", prepared.Sub(start), m.delivered)
	}
}

// TestQueuedSendCanceledOnDisconnect: a send queued for hours (a day's
// recipients) is canceled when its connection is disconnected, not at
// its time.
func TestQueuedSendCanceledOnDisconnect(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := &fakeMailbox{states: []string{StateActive, StateDisconnecting}}
	m.register(env)
	start := env.Now()
	env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", NotBefore: start.Add(6 * time.Hour)})
	var res SendResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.State != SendCanceled || m.created != 0 || env.Now().Sub(start) > 15*time.Minute {
		t.Errorf("ended %+v after %v, %d drafts", res, env.Now().Sub(start), m.created)
	}
}

func TestSendIDs(t *testing.T) {
	a, b := SendID("conn_a", "key-1"), SendID("conn_a", "key-2")
	if a == b || a != SendID("conn_a", "key-1") || SendID("conn_b", "key-1") == a {
		t.Errorf("send IDs: %s %s", a, b)
	}
	if len(a) != 28 || SendWorkflowID("conn_a", "key-1") != "connection/conn_a/send/"+a {
		t.Errorf("send ID %q, workflow ID %q", a, SendWorkflowID("conn_a", "key-1"))
	}
}

// TestSendCanceledByOperator: Cancel in the Temporal UI ends a send's
// workflow; its row says what happened. Before any submission it is
// canceled and nothing goes; after one, one look in the mailbox decides
// between sent and outcome_unknown, and nothing is sent again.
func TestSendCanceledByOperator(t *testing.T) {
	for _, tc := range []struct {
		name          string
		m             fakeMailbox
		notBefore     time.Duration
		state, reason string
		delivered     int
	}{
		{name: "queued for its rates", notBefore: time.Hour, state: SendCanceled, reason: ReasonOperatorCanceled},
		{name: "waiting for a slot in its rates", m: fakeMailbox{slotWaits: []time.Duration{time.Hour}}, state: SendCanceled, reason: ReasonOperatorCanceled},
		{name: "after a submission that went", m: fakeMailbox{submits: []string{"delivered-504"}}, state: SendSent, delivered: 1},
		{name: "after a submission that did not go", m: fakeMailbox{submits: []string{"lost-504"}}, state: SendFailed, reason: ReasonOutcomeUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			m := tc.m
			m.register(env)
			start := env.Now()
			env.RegisterDelayedCallback(env.CancelWorkflow, 5*time.Minute)
			env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1",
				NotBefore: start.Add(tc.notBefore), Options: SendOptions{Settle: time.Hour}, Rates: testRates})
			if err := env.GetWorkflowError(); !temporal.IsCanceledError(err) {
				t.Fatalf("the workflow ended with %v, want canceled", err)
			}
			last := m.records[len(m.records)-1]
			if last.State != tc.state || last.Reason != tc.reason || m.delivered != tc.delivered || m.submitted > 1 {
				t.Errorf("recorded %s %q, %d delivered, %d submissions; want %s %q, %d", last.State, last.Reason, m.delivered, m.submitted, tc.state, tc.reason, tc.delivered)
			}
		})
	}
}

// TestSendSubmitsAtItsSlot: a send that finds no slot in its mailbox's
// rates when it comes to be submitted sleeps until the time it was given
// and is submitted then; its state is written by the slot, not by a step
// of its own.
func TestSendSubmitsAtItsSlot(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	m := &fakeMailbox{slotWaits: []time.Duration{70 * time.Second, 3 * time.Second}}
	m.register(env)
	start := env.Now()
	var submits []time.Time
	onSubmit(env, func() { submits = append(submits, env.Now()) })
	env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", Rates: testRates})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(submits) != 3 || submits[1].Sub(start) < 70*time.Second || submits[2].Sub(submits[1]) < 3*time.Second || m.delivered != 1 || m.submitted != 1 {
		t.Errorf("submits at %v after the start, %d delivered, %d requests", submits, m.delivered, m.submitted)
	}
	for _, r := range m.records {
		if r.State == SendSending {
			t.Errorf("recorded sending itself: %+v", r)
		}
	}
}

// TestSendEndedByTheSaga: the disconnect saga's signal (SignalSendEnded)
// ends a send's wait at once: a send queued for its time, waiting for a
// slot or held for a new sign-in is canceled with the saga's reason when
// the signal comes, not at its time; a send whose request is under way
// when it comes is followed to its end, sent once, or canceled when the
// mailbox shows it never went.
func TestSendEndedByTheSaga(t *testing.T) {
	const at = 2 * time.Minute
	for _, tc := range []struct {
		name      string
		m         fakeMailbox
		notBefore time.Duration
		reason    string // the signal's
		// onSubmit signals as the first submission starts, not at "at".
		onSubmit bool
		opts     SendOptions
		// want
		state, wantReason   string
		delivered, requests int
		created             int
		held                bool
		// prompt: ended within seconds of the signal.
		prompt bool
	}{
		{name: "queued for hours, disconnected", notBefore: 6 * time.Hour, reason: ReasonConnectionEnded,
			state: SendCanceled, wantReason: ReasonConnectionEnded, prompt: true},
		{name: "queued for hours, its mailbox detached", notBefore: 6 * time.Hour, reason: ReasonMailboxDetached,
			state: SendCanceled, wantReason: ReasonMailboxDetached, prompt: true},
		{name: "queued for minutes, the registry still says active", notBefore: 4 * time.Minute, reason: ReasonConnectionEnded,
			state: SendCanceled, wantReason: ReasonConnectionEnded, prompt: true},
		{name: "waiting for a slot in its rates", m: fakeMailbox{slotWaits: []time.Duration{3 * time.Hour}}, reason: ReasonConnectionEnded,
			state: SendCanceled, wantReason: ReasonConnectionEnded, created: 1, prompt: true},
		{name: "held in reauth_required after its token died", reason: ReasonConnectionEnded,
			m:     fakeMailbox{submits: []string{"token-dead"}, states: append([]string{StateActive, StateActive}, slices.Repeat([]string{StateReauthRequired}, 100)...)},
			state: SendCanceled, wantReason: ReasonConnectionEnded, requests: 1, created: 1, held: true, prompt: true},
		{name: "held in reauth_required before its draft", reason: ReasonConnectionEnded,
			m:     fakeMailbox{states: slices.Repeat([]string{StateReauthRequired}, 100)},
			state: SendCanceled, wantReason: ReasonConnectionEnded, held: true, prompt: true},
		{name: "accepted while the signal came", onSubmit: true, reason: ReasonConnectionEnded,
			state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "delivered, 504, the signal during the settle", m: fakeMailbox{submits: []string{"delivered-504"}}, opts: SendOptions{Settle: 10 * time.Minute},
			reason: ReasonConnectionEnded, state: SendSent, delivered: 1, requests: 1, created: 1},
		{name: "not delivered, 504, the signal during the settle", m: fakeMailbox{submits: []string{"lost-504"}}, opts: SendOptions{Settle: 10 * time.Minute},
			reason: ReasonConnectionEnded, state: SendCanceled, wantReason: ReasonConnectionEnded, requests: 1, created: 1},
		{name: "send-only, queued", m: fakeMailbox{method: SendBySendMail}, notBefore: time.Hour, reason: ReasonConnectionEnded,
			state: SendCanceled, wantReason: ReasonConnectionEnded, prompt: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			m := tc.m
			m.register(env)
			start := env.Now()
			signal := func() { env.SignalWorkflow(SignalSendEnded, SendEndedSignal{Reason: tc.reason}) }
			var signaled time.Time
			if tc.onSubmit {
				onSubmit(env, func() {
					if signaled.IsZero() {
						signaled = env.Now()
						signal()
					}
				})
			} else {
				env.RegisterDelayedCallback(func() { signaled = env.Now(); signal() }, at)
			}
			in := SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Method: m.method,
				NotBefore: start.Add(tc.notBefore), Rates: testRates, Options: tc.opts}
			if tc.reason == ReasonMailboxDetached {
				in.MailboxID, in.UserID = "mbx_shared01", "u-shared"
			}
			env.ExecuteWorkflow(Send, in)
			var res SendResult
			if err := env.GetWorkflowResult(&res); err != nil {
				t.Fatal(err)
			}
			if res.State != tc.state || res.Reason != tc.wantReason {
				t.Errorf("ended %s %q, want %s %q", res.State, res.Reason, tc.state, tc.wantReason)
			}
			if m.delivered != tc.delivered || m.submitted != tc.requests || m.created != tc.created {
				t.Errorf("delivered %d, send requests %d, drafts created %d; want %d, %d, %d",
					m.delivered, m.submitted, m.created, tc.delivered, tc.requests, tc.created)
			}
			if signaled.IsZero() {
				t.Fatal("the signal was never sent")
			}
			if took := env.Now().Sub(signaled); tc.prompt && took > 10*time.Second {
				t.Errorf("canceled %v after the signal, want at once", took)
			}
			held := false
			for _, r := range m.records {
				held = held || r.State == SendReauthRequired
			}
			if held != tc.held {
				t.Errorf("held in reauth_required: %v, want %v", held, tc.held)
			}
			last := m.records[len(m.records)-1]
			if last.State != tc.state || len(last.Events) != 1 {
				t.Fatalf("last record %+v", last)
			}
			if ev := last.Events[0]; tc.state == SendCanceled && (ev.Type != EventSendFailed || ev.Data["reason"] != tc.wantReason || ev.Data["state"] != SendCanceled || last.ReasonText != SendReasonText[tc.wantReason]) {
				t.Errorf("canceled event %+v, record %+v", ev, last)
			}
		})
	}
}

// TestPrepareSendTimeFromItsFiles: PrepareSend is given the time Graph's
// upload limit (150 MB per mailbox in 5 minutes) lets the message's files
// take twice over, beside the 5 minutes of a message without files: a
// 150 MB message, which needs 5 minutes at the limit and as many again
// when the window is full of the sends before it, is not cut off midway.
func TestPrepareSendTimeFromItsFiles(t *testing.T) {
	for _, tc := range []struct {
		bytes int64
		want  time.Duration
		// local: prepared inside the workflow's task (no large file).
		local bool
	}{{0, 0, true}, {2_000_000, 0, true}, {35_000_000, 5*time.Minute + 140*time.Second, false},
		{150 << 20, 5*time.Minute + 2*time.Duration(float64(5*time.Minute)*float64(150<<20)/150e6).Round(time.Second), false}} {
		var s testsuite.WorkflowTestSuite
		env := s.NewTestWorkflowEnvironment()
		m := &fakeMailbox{}
		m.register(env)
		var given time.Duration
		local := false
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
			if info.ActivityType.Name == ActivityPrepareSend {
				given = info.Deadline.Sub(info.StartedTime).Round(time.Second)
			}
		})
		env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, args []any) {
			if _, ok := args[0].(SendRef); ok && m.created == 0 {
				local = true
			}
		})
		env.ExecuteWorkflow(Send, SendInput{SendID: "snd_1", ConnectionID: "conn_1", UserID: "u-1", FileBytes: tc.bytes, Rates: testRates})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if local != tc.local || m.created != 1 {
			t.Errorf("%d bytes of files: prepared locally %v, want %v (%d drafts)", tc.bytes, local, tc.local, m.created)
		}
		if tc.local {
			continue
		}
		if given != tc.want {
			t.Errorf("%d bytes of files: PrepareSend given %v, want %v", tc.bytes, given, tc.want)
		}
		if atLimit := time.Duration(float64(graphUploadWindow) * float64(tc.bytes) / graphUploadBytes); given < 5*time.Minute+2*atLimit {
			t.Errorf("%d bytes: %v is less than the upload takes at Graph's limit with a full window (%v)", tc.bytes, given, 2*atLimit)
		}
	}
}
