package workflows

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"
)

// SendID is the ID of the send an Idempotency-Key names on a connection:
// the same connection and key always give the same ID, so a retried
// request finds its send, and the send's workflow, again.
func SendID(connectionID, key string) string {
	sum := sha256.Sum256([]byte(connectionID + "\x00" + key))
	return "snd_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:15]))
}

// SendWorkflowID is the workflow ID of the send an Idempotency-Key names
// on a connection; the only place it is built.
func SendWorkflowID(connectionID, key string) string {
	return sendWorkflowID(connectionID, SendID(connectionID, key))
}

// sendWorkflowID is the workflow ID of a send known by its ID.
func sendWorkflowID(connectionID, sendID string) string {
	return "connection/" + connectionID + "/send/" + sendID
}

// SignalSendEnded tells a send's workflow that its connection is being
// disconnected, or its mailbox detached (SendEndedSignal): a send not yet
// submitted is canceled at once, however long its wait; one submitted is
// followed to its end as before.
const SignalSendEnded = "send_ended"

// SendEndedSignal says why the send's way out ended: ReasonConnectionEnded
// or ReasonMailboxDetached.
type SendEndedSignal struct {
	Reason string `json:"reason"`
}

// WaitingSendsInput pages the sends of a connection (or of one of its
// attached mailboxes) that wait before their submission: queued or
// reauth_required.
type WaitingSendsInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
	After        string `json:"after,omitempty"`
	Limit        int    `json:"limit"`
}

// WaitingSendsResult is a page of send IDs, in order.
type WaitingSendsResult struct {
	IDs []string `json:"ids"`
}

// SendKeyProperty is the extended property every draft outlookd sends is
// stamped with, its value the send's ID: one fixed GUID and name, so a
// mailbox never runs out of named properties
// (docs/graph.md#extended-properties).
const SendKeyProperty = "String {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name X-Outlookd-Send-Key"

// Send states (the sends table's).
const (
	// SendDraft: a draft made through the API, not sent yet.
	SendDraft          = "draft"
	SendQueued         = "queued"
	SendSending        = "sending"
	SendSent           = "sent"
	SendFailed         = "failed"
	SendCanceled       = "canceled"
	SendReauthRequired = "reauth_required"
)

// Reasons a send fails or is canceled, each with a sentence (SendReasonText).
const (
	// ReasonOutcomeUnknown: Graph's answer was ambiguous and the mailbox
	// shows neither the draft nor a sent copy: the message may or may not
	// have gone, and it is not sent again.
	ReasonOutcomeUnknown   = "outcome_unknown"
	ReasonSendAsDenied     = "send_as_denied"
	ReasonSendNotGranted   = "send_not_granted"
	ReasonMessageTooLarge  = "message_too_large"
	ReasonInvalidRecipient = "invalid_recipients"
	ReasonTooManyRecipient = "too_many_recipients"
	ReasonMailboxFull      = "mailbox_full"
	ReasonSubmissionBlock  = "submission_blocked"
	ReasonGraphRefused     = "graph_refused"
	ReasonDraftGone        = "draft_deleted"
	ReasonNotSubmitted     = "not_submitted"
	ReasonConnectionEnded  = "connection_disconnected"
	ReasonOriginalGone     = "original_not_found"
	ReasonMailboxDetached  = "mailbox_detached"
	ReasonDraftDiscarded   = "draft_discarded"
	ReasonOperatorCanceled = "operator_canceled"
)

// SendReasonText says what a reason means, for the app's people.
var SendReasonText = map[string]string{
	ReasonOutcomeUnknown:   "Microsoft's answer left it unknown whether the message went, and the mailbox shows neither the draft nor a sent copy; it was not sent again.",
	ReasonSendAsDenied:     "The mailbox may not send as, or on behalf of, the sending address (ErrorSendAsDenied).",
	ReasonSendNotGranted:   "The connection was not granted the Mail.Send permission (ErrorAccessDenied); reconnect it with sending allowed.",
	ReasonMessageTooLarge:  "The message with its attachments is larger than the mailbox may send (ErrorMessageSizeExceeded).",
	ReasonInvalidRecipient: "Microsoft refused one or more recipients' addresses (ErrorInvalidRecipients).",
	ReasonTooManyRecipient: "The message has more recipients than the mailbox may send to at once.",
	ReasonMailboxFull:      "The mailbox is full, so nothing can be sent or saved from it (ErrorQuotaExceeded).",
	ReasonSubmissionBlock:  "The mailbox is blocked from sending, by an administrator or by Exchange's outbound spam protection (ErrorMessageSubmissionBlocked).",
	ReasonGraphRefused:     "Microsoft Graph refused the message.",
	ReasonDraftGone:        "The draft was deleted from the mailbox before it was sent.",
	ReasonNotSubmitted:     "Microsoft did not take the message after several tries; nothing was sent.",
	ReasonConnectionEnded:  "The connection was disconnected before the message went out.",
	ReasonOriginalGone:     "The message being answered or forwarded is no longer in the mailbox.",
	ReasonMailboxDetached:  "The mailbox was detached from its connection before the message went out.",
	ReasonDraftDiscarded:   "The draft was discarded through the API; nothing was sent.",
	ReasonOperatorCanceled: "An operator canceled the send's workflow before the message was submitted; nothing was sent.",
	ReasonWorkflowEnded:    "The send's workflow was ended by an operator without finishing it; if it was past the queue the message may have gone (look in Sent Items); it is not sent again.",
}

// Event types of sends.
const (
	EventSendSent   = "send.sent"
	EventSendFailed = "send.failed"
)

// SendInput starts a send's workflow. The message itself stays in the
// sends table; the workflow carries only what it decides with.
type SendInput struct {
	SendID       string `json:"sendId"`
	ConnectionID string `json:"connectionId"`
	// UserID is the mailbox's Graph user ID (the signed-in user's, or the
	// attached mailbox's).
	UserID string `json:"userId"`
	// MailboxID names the attached mailbox a service account sends from;
	// empty for a connection's own mailbox.
	MailboxID string `json:"mailboxId,omitempty"`
	// Recipients counts To, Cc and Bcc.
	Recipients int `json:"recipients"`
	// Method is how the send goes: SendByDraft (the default) or
	// SendBySendMail.
	Method string `json:"method,omitempty"`
	// NotBefore is when the send is expected to go, by its place in its
	// mailbox's queue; the workflow sleeps until then.
	NotBefore time.Time `json:"notBefore,omitempty"`
	// Rates are the mailbox's sending rates, whose slot the send takes
	// just before it is submitted.
	Rates   SendRates   `json:"rates"`
	Options SendOptions `json:"options"`
	// FileBytes is the size of the message's files, which PrepareSend
	// uploads: its time is derived from it (prepareTimeout). Zero in runs
	// started before it, whose PrepareSend keeps the time it had.
	FileBytes int64 `json:"fileBytes,omitempty"`
	// Version is the send workflow's version the run is started with
	// (SendVersion): a run given it takes every change up to it without
	// asking workflow.GetVersion, so its history holds no marker and its
	// visibility record no TemporalChangeVersion upsert, one write fewer
	// at the server per send. Zero in runs started before it was given,
	// which ask as they did (send.go, versions).
	Version int `json:"version,omitempty"`
}

// SendVersion is the version of the send workflow a send started now is
// given (SendInput.Version): 2, send-versions-at-once's version 2.
const SendVersion = 2

// Graph takes at most 150 MB uploaded per mailbox in any 5 minutes
// (docs/graph.md#throttling): a 150 MB message takes 5 minutes at best.
const (
	graphUploadBytes  = 150_000_000
	graphUploadWindow = 5 * time.Minute
)

// prepareTimeout is PrepareSend's time for a message with fileBytes of
// files: the 5 minutes a message without files is given, and twice the
// time Graph's upload limit lets its files take, for the mailbox's window
// may already hold as much from the sends before it. 150 MB gets 15
// minutes. A worker that dies is found by the heartbeat within a minute,
// whatever this is.
func prepareTimeout(fileBytes int64) time.Duration {
	const base = 5 * time.Minute
	if fileBytes <= 0 {
		return base
	}
	upload := time.Duration(float64(graphUploadWindow) * float64(fileBytes) / graphUploadBytes)
	return base + 2*upload.Round(time.Second)
}

// SendRates are a mailbox's sending rates (docs/sending.md#limits-before-graphs).
// A send's slot is counted against them when it is submitted; zero
// (a send started before slots were taken at submission) takes none.
type SendRates struct {
	PerMinute       int `json:"perMinute,omitempty"`
	DailyRecipients int `json:"dailyRecipients,omitempty"`
}

// SendOptions tune a send's waits; zero means the defaults. Tests shorten
// them.
type SendOptions struct {
	// Settle is how long the workflow waits after an ambiguous answer
	// before it believes a draft it still finds in Drafts was not
	// submitted (an earlier request may still be under way).
	Settle time.Duration `json:"settle,omitempty"`
	// SentItemsWait bounds how long an accepted message may stay in
	// Outbox before the send is reported without its Sent Items copy.
	SentItemsWait time.Duration `json:"sentItemsWait,omitempty"`
	// LookFor bounds how long the mailbox is looked at (while Graph fails)
	// before an ambiguous send is called outcome_unknown.
	LookFor time.Duration `json:"lookFor,omitempty"`
	// ReauthPoll is the longest wait between two looks at a connection
	// that needs a new sign-in before its send can go on.
	ReauthPoll time.Duration `json:"reauthPoll,omitempty"`
}

func (o SendOptions) withDefaults() SendOptions {
	if o.Settle == 0 {
		o.Settle = 30 * time.Second
	}
	if o.SentItemsWait == 0 {
		o.SentItemsWait = 30 * time.Minute
	}
	if o.LookFor == 0 {
		o.LookFor = 6 * time.Hour
	}
	if o.ReauthPoll == 0 {
		o.ReauthPoll = 10 * time.Minute
	}
	return o
}

// SendResult is how a send ended.
type SendResult struct {
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	MessageID string `json:"messageId,omitempty"`
}

// SendRef names a send on a connection's mailbox.
type SendRef struct {
	SendID       string `json:"sendId"`
	ConnectionID string `json:"connectionId"`
	UserID       string `json:"userId"`
}

// PrepareSendResult is the stamped draft, or what the mailbox already
// shows of the send.
type PrepareSendResult struct {
	DraftID string `json:"draftId"`
	// Found is where the key was found: "" (a draft was created now),
	// drafts, outbox, sentitems or elsewhere.
	Found string `json:"found,omitempty"`
}

// SubmitSendInput sends a stamped draft.
type SubmitSendInput struct {
	SendRef
	DraftID string `json:"draftId"`
	// Rates, when set, are taken a slot of just before the request; with
	// no slot free now, nothing is sent and the result says when.
	Rates SendRates `json:"rates"`
	// Submission, when set, numbers the submission within its send (a
	// local activity's, send-versions-at-once version 2): the registry
	// records it with the slot before the request leaves, and a
	// submission that finds its number recorded (it ran before, and its
	// worker died before the answer was recorded) sends nothing and
	// answers ambiguous.
	Submission int `json:"submission,omitempty"`
}

// SendMailInput sends a send-only connection's message.
type SendMailInput struct {
	SendRef
	// Rates and Submission: as SubmitSendInput's.
	Rates      SendRates `json:"rates"`
	Submission int       `json:"submission,omitempty"`
}

// SubmitSendResult is Graph's answer to a draft's send.
type SubmitSendResult struct {
	// Accepted: 202 (with or without Retry-After).
	Accepted bool `json:"accepted"`
	// NotADraft: Graph says the item is no draft (any more) or is not
	// found by that ID: it was submitted before.
	NotADraft bool `json:"notADraft,omitempty"`
	// Ambiguous: a timeout, a reset connection or a 5xx; what happened is
	// learnt by looking.
	Ambiguous bool   `json:"ambiguous,omitempty"`
	Detail    string `json:"detail,omitempty"`
	// WaitUntil, when set, is when the mailbox's rates have a slot for
	// the send: nothing was sent, and the send is to be submitted then.
	WaitUntil time.Time `json:"waitUntil,omitempty"`
}

// Places a send's key is found.
const (
	FoundNowhere   = ""
	FoundDrafts    = "drafts"
	FoundOutbox    = "outbox"
	FoundSentItems = "sentitems"
	// FoundElsewhere: a sent copy moved out of Sent Items.
	FoundElsewhere = "elsewhere"
)

// LocateSendResult is where the mailbox shows a send's key.
type LocateSendResult struct {
	Found     string `json:"found"`
	MessageID string `json:"messageId,omitempty"`
	// Sender is the address Exchange recorded as the sent copy's sender:
	// the mailbox's own with Send As, the account's with Send on Behalf.
	Sender string `json:"sender,omitempty"`
}

// RecordSendInput writes a send's state and its events in one
// transaction.
type RecordSendInput struct {
	SendID     string        `json:"sendId"`
	State      string        `json:"state"`
	Reason     string        `json:"reason,omitempty"`
	ReasonText string        `json:"reasonText,omitempty"`
	DraftID    string        `json:"draftId,omitempty"`
	MessageID  string        `json:"messageId,omitempty"`
	Sender     string        `json:"sender,omitempty"`
	NotBefore  time.Time     `json:"notBefore,omitempty"`
	Events     []EventRecord `json:"events,omitempty"`
	// ConnectionID owns the events.
	ConnectionID string `json:"connectionId"`
}

// SendStateInput asks the registry about a send's connection and, for a
// send from an attached mailbox, that mailbox.
type SendStateInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
}

// SendConnectionResult is the registry's state of a send's connection.
type SendConnectionResult struct {
	State string `json:"state"`
	// MailboxDetached: the attached mailbox the send goes from was
	// detached (or is being detached).
	MailboxDetached bool `json:"mailboxDetached,omitempty"`
}

// Ways a send goes.
const (
	// SendByDraft: a stamped draft, sent, looked for after an ambiguous
	// answer (Mail.ReadWrite and Mail.Send granted).
	SendByDraft = "draft"
	// SendBySendMail: sendMail in one request (Mail.Send alone: a
	// send-only connection); an ambiguous answer is outcome_unknown.
	SendBySendMail = "sendMail"
)

// Error types of the send activities.
const (
	// ErrNotSent: the activity failed before any request reached Graph;
	// it may be run again without looking.
	ErrNotSent = "NotSent"
	// ErrSendRefused: Graph refused the message for good; details carry
	// the reason (one of the Reason constants above).
	ErrSendRefused = "SendRefused"
)
