package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Limits of one send, before Graph's (docs/graph.md#sending-limits,
// docs/graph.md#attachments).
const (
	// MaxRecipients is Exchange Online's per-message recipient limit (To,
	// Cc and Bcc together); PersonalMaxRecipients Outlook.com's.
	MaxRecipients         = 500
	PersonalMaxRecipients = 100
	// MaxInlineAttachment is what a send-only connection's sendMail may
	// carry in files: Graph takes request bodies of 4 MB, base64 included.
	// Connections that write drafts attach larger files through upload
	// sessions (docs/graph.md#upload-sessions), up to the message's size.
	MaxInlineAttachment = 3 << 20
	// MaxMessageSize is Exchange Online's default message size limit,
	// attachments included.
	MaxMessageSize = 35 << 20
	// maxSendBody bounds a send's request body: a message at its largest,
	// in base64.
	maxSendBody = 48 << 20
	// MaxHeaders bounds the custom internet headers of a message.
	MaxHeaders = 20
	// SendsPerMinute is Exchange Online's per-mailbox message rate.
	SendsPerMinute = 30
	// DailyRecipients is Exchange Online's recipients a mailbox may send
	// to in 24 hours; PersonalDailyRecipients Outlook.com's.
	DailyRecipients         = 10000
	PersonalDailyRecipients = 300
)

// ratesOf are the sending rates of the mailbox a send goes from.
func ratesOf(o origin, noQueue bool) store.Rates {
	r := store.Rates{Mailbox: o.userID, PerMinute: SendsPerMinute, DailyRecipients: DailyRecipients, NoQueue: noQueue}
	if o.row.TenantID == consumerTenant {
		r.DailyRecipients = PersonalDailyRecipients
	}
	return r
}

// consumerTenant is the tenant ID of personal Microsoft accounts
// (Outlook.com).
const consumerTenant = "9188040d-6c67-4c5b-b112-36a304b66dad"

type headerJSON struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type sendBodyJSON struct {
	ContentType string `json:"content_type"`
	Content     string `json:"content"`
}

type attachmentInJSON struct {
	Name         string `json:"name"`
	ContentType  string `json:"content_type"`
	ContentBytes string `json:"content_bytes"`
	// UploadID names a complete upload instead of content_bytes
	// (docs/sending.md#large-attachments).
	UploadID  string `json:"upload_id,omitempty"`
	IsInline  bool   `json:"is_inline,omitempty"`
	ContentID string `json:"content_id,omitempty"`
}

// sendRequest is the body of POST /v1/connections/{id}/sends.
type sendRequest struct {
	To          []recipientJSON    `json:"to"`
	Cc          []recipientJSON    `json:"cc"`
	Bcc         []recipientJSON    `json:"bcc"`
	ReplyTo     []recipientJSON    `json:"reply_to"`
	Subject     string             `json:"subject"`
	Body        *sendBodyJSON      `json:"body"`
	Importance  string             `json:"importance"`
	Headers     []headerJSON       `json:"headers"`
	Attachments []attachmentInJSON `json:"attachments"`
	// NoQueue refuses a send over a rate limit instead of queueing it.
	NoQueue bool `json:"no_queue"`
}

type attachmentOutJSON struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	IsInline    bool   `json:"is_inline"`
}

// sendJSON is a send as the API shows it.
type sendJSON struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	// MailboxID is the attached mailbox the send goes from; Sender who
	// Exchange recorded as the sender once it went.
	MailboxID      string              `json:"mailbox_id,omitempty"`
	Sender         string              `json:"sender,omitempty"`
	IdempotencyKey string              `json:"idempotency_key"`
	Kind           string              `json:"kind"`
	State          string              `json:"state"`
	Reason         string              `json:"reason,omitempty"`
	ReasonText     string              `json:"reason_text,omitempty"`
	Subject        string              `json:"subject"`
	To             []recipientJSON     `json:"to"`
	Cc             []recipientJSON     `json:"cc"`
	Bcc            []recipientJSON     `json:"bcc"`
	Recipients     int                 `json:"recipients"`
	Attachments    []attachmentOutJSON `json:"attachments"`
	// MessageID is the copy in Sent Items (a synced message's ID).
	MessageID string     `json:"message_id,omitempty"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
}

func toSendJSON(s store.Send) sendJSON {
	out := sendJSON{ID: s.ID, ConnectionID: s.ConnectionID, MailboxID: s.MailboxID, Sender: s.Sender, IdempotencyKey: s.Key, Kind: s.Kind, State: s.State, Reason: s.Reason, ReasonText: s.ReasonText,
		Subject: s.Message.Subject, To: recipients(s.Message.To), Cc: recipients(s.Message.Cc), Bcc: recipients(s.Message.Bcc),
		Recipients: s.Recipients, Attachments: []attachmentOutJSON{}, MessageID: s.MessageID, NotBefore: s.NotBefore,
		CreatedAt: s.CreatedAt, UpdatedAt: s.UpdatedAt, SentAt: s.SentAt}
	if s.State != workflows.SendQueued || s.NotBefore == nil || !s.NotBefore.After(time.Now()) {
		// not_before says only when a queued send waits for its
		// mailbox's rates.
		out.NotBefore = nil
	}
	for _, a := range s.Attachments {
		out.Attachments = append(out.Attachments, attachmentOutJSON{Name: a.Name, ContentType: a.ContentType, Size: a.Size, IsInline: a.IsInline})
	}
	return out
}

// keyPattern is what an Idempotency-Key may be: visible ASCII, 1 to 255
// characters (a UUID, typically).
var keyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

// headerName is an x- header's name (RFC 5322 field name characters).
var headerName = regexp.MustCompile(`^[Xx]-[\x21-\x39\x3b-\x7e]{1,100}$`)

// sendInvalid is a send the API refuses, with its code and sentence.
type sendInvalid struct{ code, detail string }

// toOutgoing checks a send request and converts it for the store: every
// refusal is a 422 with a sentence naming the field.
func (r sendRequest) toOutgoing(personal bool) (store.OutgoingMessage, []store.SendAttachment, *sendInvalid) {
	return r.check(personal, true)
}

// check is toOutgoing for a new message (needRecipients) or an answer to
// one, whose recipients Outlook may fill in.
func (r sendRequest) check(personal, needRecipients bool) (store.OutgoingMessage, []store.SendAttachment, *sendInvalid) {
	m := store.OutgoingMessage{Subject: r.Subject, Importance: r.Importance}
	for _, list := range []struct {
		name string
		in   []recipientJSON
		out  *[]store.Recipient
	}{{"to", r.To, &m.To}, {"cc", r.Cc, &m.Cc}, {"bcc", r.Bcc, &m.Bcc}, {"reply_to", r.ReplyTo, &m.ReplyTo}} {
		for i, rc := range list.in {
			if bad := checkAddress(rc); bad != "" {
				return m, nil, &sendInvalid{"invalid_recipient", fmt.Sprintf("%s[%d]: %s", list.name, i, bad)}
			}
			*list.out = append(*list.out, store.Recipient{Name: rc.Name, Address: rc.Address})
		}
	}
	limit := MaxRecipients
	if personal {
		limit = PersonalMaxRecipients
	}
	switch n := m.Recipients(); {
	case n == 0 && needRecipients:
		return m, nil, &sendInvalid{"no_recipients", "A message needs at least one recipient in to, cc or bcc."}
	case n > limit:
		return m, nil, &sendInvalid{"too_many_recipients", fmt.Sprintf("The message has %d recipients in to, cc and bcc together; this mailbox may send to at most %d at once.", n, limit)}
	}
	if len(m.ReplyTo) > 10 {
		return m, nil, &sendInvalid{"invalid_reply_to", "reply_to takes at most 10 addresses."}
	}
	if len(r.Subject) > 998 || strings.ContainsAny(r.Subject, "\r\n") {
		return m, nil, &sendInvalid{"invalid_subject", "subject must be one line of at most 998 bytes."}
	}
	if r.Body != nil {
		m.Body = store.Body{ContentType: r.Body.ContentType, Content: r.Body.Content}
	}
	switch m.Body.ContentType {
	case "":
		m.Body.ContentType = "text"
	case "text", "html":
	default:
		return m, nil, &sendInvalid{"invalid_body", `body.content_type must be "text" or "html".`}
	}
	switch r.Importance {
	case "", "low", "normal", "high":
	default:
		return m, nil, &sendInvalid{"invalid_importance", `importance must be "low", "normal" or "high".`}
	}
	if len(r.Headers) > MaxHeaders {
		return m, nil, &sendInvalid{"invalid_header", fmt.Sprintf("A message takes at most %d custom headers.", MaxHeaders)}
	}
	seen := map[string]bool{}
	for i, h := range r.Headers {
		switch {
		case !headerName.MatchString(h.Name):
			return m, nil, &sendInvalid{"invalid_header", fmt.Sprintf("headers[%d]: a custom header's name starts with x- and holds only visible ASCII without ':' (Graph takes no other).", i)}
		case seen[strings.ToLower(h.Name)]:
			return m, nil, &sendInvalid{"invalid_header", fmt.Sprintf("headers[%d]: %s is given twice.", i, h.Name)}
		case len(h.Value) > 998 || strings.IndexFunc(h.Value, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) >= 0:
			return m, nil, &sendInvalid{"invalid_header", fmt.Sprintf("headers[%d]: a header's value is one line of at most 998 bytes.", i)}
		}
		seen[strings.ToLower(h.Name)] = true
		m.Headers = append(m.Headers, store.Header{Name: h.Name, Value: h.Value})
	}
	size := int64(len(m.Subject) + len(m.Body.Content))
	var atts []store.SendAttachment
	for i, a := range r.Attachments {
		if a.UploadID != "" {
			switch {
			case !uploadIDPattern.MatchString(a.UploadID):
				return m, nil, &sendInvalid{"upload_not_found", fmt.Sprintf("attachments[%d]: upload_id %q is not an upload's ID.", i, a.UploadID)}
			case a.ContentBytes != "":
				return m, nil, &sendInvalid{"invalid_attachment", fmt.Sprintf("attachments[%d]: give content_bytes or upload_id, not both.", i)}
			case len(a.Name) > 255 || strings.ContainsAny(a.Name, "/\\\x00"):
				return m, nil, &sendInvalid{"invalid_attachment", fmt.Sprintf("attachments[%d]: name must be a file name of 1 to 255 bytes (or left out for the upload's).", i)}
			}
			// Its size is counted once the upload is read (withUploads).
			atts = append(atts, store.SendAttachment{Name: a.Name, ContentType: a.ContentType, IsInline: a.IsInline, ContentID: a.ContentID, UploadID: a.UploadID})
			continue
		}
		if a.Name == "" || len(a.Name) > 255 || strings.ContainsAny(a.Name, "/\\\x00") {
			return m, nil, &sendInvalid{"invalid_attachment", fmt.Sprintf("attachments[%d]: name must be a file name of 1 to 255 bytes.", i)}
		}
		content, err := base64.StdEncoding.DecodeString(a.ContentBytes)
		if err != nil {
			return m, nil, &sendInvalid{"invalid_attachment", fmt.Sprintf("attachments[%d]: content_bytes must be standard base64.", i)}
		}
		if len(content) > MaxMessageSize {
			return m, nil, &sendInvalid{"attachment_too_large", fmt.Sprintf("attachments[%d]: %s is %d bytes; a message with its files may be at most 35 MB.", i, a.Name, len(content))}
		}
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		size += int64(len(content))
		atts = append(atts, store.SendAttachment{Name: a.Name, ContentType: ct, IsInline: a.IsInline, ContentID: a.ContentID, Content: content})
	}
	if size > MaxMessageSize {
		return m, nil, &sendInvalid{"message_too_large", fmt.Sprintf("The message is %d bytes with its attachments; Exchange Online sends at most 35 MB by default.", size)}
	}
	return m, atts, nil
}

// checkAddress says what is wrong with a recipient ("" when nothing is).
func checkAddress(r recipientJSON) string {
	if r.Address == "" || len(r.Address) > 320 {
		return "address must be an e-mail address of at most 320 characters."
	}
	a, err := mail.ParseAddress(r.Address)
	if err != nil || a.Address != r.Address || !strings.Contains(r.Address[strings.LastIndex(r.Address, "@")+1:], ".") {
		return fmt.Sprintf("%q is not an e-mail address.", r.Address)
	}
	if len(r.Name) > 255 || strings.ContainsAny(r.Name, "\r\n") {
		return "name must be one line of at most 255 bytes."
	}
	return ""
}

// requestHash names a request's content: the same key with the same
// request finds its send, with another it is refused.
func requestHash(kind string, r any) []byte {
	raw, _ := json.Marshal(r)
	sum := sha256.Sum256(append([]byte(kind+"\x00"), raw...))
	return sum[:]
}

// hasScope says whether the connection was granted a scope.
func hasScope(row store.Connection, scope string) bool {
	return slices.ContainsFunc(row.GrantedScopes, func(s string) bool { return strings.EqualFold(s, scope) })
}

// origin is the mailbox a send goes from: a connection's own, or one a
// service account attached (docs/sending.md#from-a-shared-mailbox).
type origin struct {
	row store.Connection
	// mailboxID names the attached mailbox; empty for the connection's
	// own. key is the mailbox's key in the store (its synced mail).
	mailboxID, key string
	// userID is the mailbox's Graph user, whom the send's requests name.
	userID string
	// method is how the send goes: SendByDraft or SendBySendMail.
	method string
}

// sendMethod is how a send goes: through a stamped draft when the
// connection may write the mailbox's mail, else (Mail.Send alone) with
// sendMail.
func sendMethod(row store.Connection, shared bool) string {
	write := "Mail.ReadWrite"
	if shared {
		write = "Mail.ReadWrite.Shared"
	}
	if hasScope(row, write) {
		return workflows.SendByDraft
	}
	return workflows.SendBySendMail
}

// sendingFrom loads the mailbox a send goes from and checks that it may
// send: only the connection's owner and admin keys send (sharing is for
// reading); the connection must be connected and granted sending; a
// service account sends from an attached mailbox only, while it stays
// attached and reachable.
func (s *server) sendingFrom(c *gin.Context) (origin, bool) {
	var o origin
	var m store.Mailbox
	ok := false
	if c.Param("mbx") == "" {
		o.row, ok = s.connection(c, accessRead)
	} else {
		o.row, m, ok = s.mailbox(c, accessRead)
	}
	if !ok {
		return o, false
	}
	row := o.row
	if !mayChange(callerOf(c), row) {
		problem(c, http.StatusForbidden, "not_owner", "This connection is shared with you for reading; only its owner or an admin key may send from it.")
		return o, false
	}
	if disconnected(c, row) {
		return o, false
	}
	if row.Mode == workflows.ModeApplication {
		problem(c, http.StatusUnprocessableEntity, "send_not_supported", "An application connection syncs a tenant's mail and does not send; send from a delegated or service-account connection.")
		return o, false
	}
	if row.State == workflows.StateDisconnecting {
		// Its waiting sends are being canceled; it never sends again.
		problem(c, http.StatusConflict, "connection_ended", "This connection is being disconnected; it sends nothing more. Create a new one.")
		return o, false
	}
	if row.UserID == "" || (row.State != workflows.StateActive && row.State != workflows.StateReauthRequired) {
		problem(c, http.StatusConflict, "connection_not_ready", "This connection is "+row.State+"; it can send once it is active.")
		return o, false
	}
	shared := row.Mode == workflows.ModeServiceAccount
	if shared && m.ID == "" {
		problem(c, http.StatusUnprocessableEntity, "mailbox_required", "A service account sends from a mailbox attached to it: POST /v1/connections/"+row.ID+"/mailboxes/{mailbox}/sends.")
		return o, false
	}
	scope := "Mail.Send"
	if shared {
		scope = "Mail.Send.Shared"
	}
	if !hasScope(row, scope) {
		problem(c, http.StatusForbidden, "send_not_granted", "This connection was not granted "+scope+"; reconnect it with sending allowed (features.send).")
		return o, false
	}
	o.key, o.userID, o.method = row.ID, row.UserID, sendMethod(row, shared)
	if shared {
		switch {
		case m.DetachedAt != nil || m.State == workflows.StateDisconnecting || m.State == workflows.StateDisconnected:
			problem(c, http.StatusConflict, "mailbox_detached", "This mailbox is detached from the connection; attach it again to send from it.")
			return o, false
		case m.State == workflows.StateAccessLost:
			problem(c, http.StatusConflict, "mailbox_access_lost", "The service account lost its access to this mailbox; once the Exchange admin restores it, resync the mailbox and send again.")
			return o, false
		}
		o.mailboxID, o.key, o.userID = m.ID, m.ID, m.UserID
	}
	return o, true
}

func (s *server) createSend(c *gin.Context) {
	o, ok := s.sendingFrom(c)
	if !ok {
		return
	}
	row := o.row
	key, ok := idempotencyKey(c)
	if !ok {
		return
	}
	var req sendRequest
	if !bindUpTo(c, &req, maxSendBody) {
		return
	}
	msg, atts, bad := req.toOutgoing(row.TenantID == consumerTenant)
	if bad != nil {
		problem(c, http.StatusUnprocessableEntity, bad.code, capitalize(bad.detail))
		return
	}
	if !s.withUploads(c, o, workflows.SendID(row.ID, key), msg, atts) {
		return
	}
	if o.method == workflows.SendBySendMail {
		// One request carries it all: Graph takes 4 MB.
		var total int64
		for _, a := range atts {
			total += a.FileSize()
		}
		if total > MaxInlineAttachment {
			problem(c, http.StatusUnprocessableEntity, "message_too_large", "A send-only connection sends a message in one request, whose attachments may total 3 MiB; grant Mail.ReadWrite for larger ones.")
			return
		}
	}
	snd := store.Send{ID: workflows.SendID(row.ID, key), ConnectionID: row.ID, MailboxID: o.mailboxID, Key: key,
		RequestHash: requestHash(o.hashKind("new"), req), Kind: "new", Message: msg}
	s.startSend(c, o, snd, atts, req.NoQueue)
}

// startSend records a send and starts its workflow, or finds the one its
// key names and answers it as it stands.
func (s *server) startSend(c *gin.Context, o origin, snd store.Send, atts []store.SendAttachment, noQueue bool) {
	row := o.row
	got, created, err := s.d.Store.CreateSend(c, snd, atts, ratesOf(o, noQueue))
	if sendRefusedProblem(c, err) || uploadRefusedProblem(c, err) {
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	if err := s.runSendWorkflow(c, row.ID, snd.Key, s.sendInput(o, got)); err != nil {
		if created {
			// Nothing is left half-made: the send did not start.
			if derr := s.d.Store.DeleteSend(context.WithoutCancel(c), got.ID); derr != nil {
				s.d.Logger.Error("an unstarted send could not be removed", "send", got.ID, "err", derr)
			}
		}
		s.unavailable(c, err)
		return
	}
	if !created {
		c.Header("Idempotent-Replayed", "true")
	}
	c.Header("Location", "/v1/connections/"+row.ID+"/sends/"+got.ID)
	c.PureJSON(http.StatusAccepted, toSendJSON(got))
}

// sendInput is the workflow's input of a recorded send from o.
func (s *server) sendInput(o origin, got store.Send) workflows.SendInput {
	r := ratesOf(o, false)
	in := workflows.SendInput{SendID: got.ID, ConnectionID: o.row.ID, UserID: o.userID, MailboxID: o.mailboxID,
		Recipients: got.Recipients, Options: s.d.SendOptions, Method: o.method,
		Rates: workflows.SendRates{PerMinute: r.PerMinute, DailyRecipients: r.DailyRecipients}, Version: workflows.SendVersion}
	if got.NotBefore != nil {
		in.NotBefore = *got.NotBefore
	}
	for _, a := range got.Attachments {
		in.FileBytes += a.Size
	}
	return in
}

// sendRefusedProblem answers a send the store refused to record: its key
// names another request, or the mailbox's rates refuse it.
func sendRefusedProblem(c *gin.Context, err error) bool {
	var limited *store.RateLimitedError
	switch {
	case errors.Is(err, store.ErrKeyReused):
		problem(c, http.StatusUnprocessableEntity, "idempotency_key_reused", "This Idempotency-Key was used for a different request on this connection; use a new key for a new message.")
	case errors.As(err, &limited):
		wait := max(time.Until(limited.At), time.Second)
		c.Header("Retry-After", strconv.Itoa(int(wait.Round(time.Second)/time.Second)))
		problem(c, http.StatusTooManyRequests, "rate_limited", "The mailbox is at its sending rate (30 messages a minute, and a day's recipients); this message could go at "+
			limited.At.UTC().Format(time.RFC3339)+". Nothing was sent or queued (no_queue).")
	case errors.Is(err, store.ErrOverDailyLimit):
		problem(c, http.StatusUnprocessableEntity, "too_many_recipients", "The message has more recipients than the mailbox may send to in a day.")
	default:
		return false
	}
	return true
}

// runSendWorkflow starts the send's workflow; one already started (or
// finished) for the key is the send's, and is left as it is.
func (s *server) runSendWorkflow(ctx context.Context, connectionID, key string, in workflows.SendInput) error {
	ctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	queue := workflows.TaskQueue
	if s.d.Connect != nil && s.d.Connect.TaskQueue != "" {
		queue = s.d.Connect.TaskQueue // the engine's, where its worker polls
	}
	_, err := s.d.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.SendWorkflowID(connectionID, key),
		TaskQueue:                queue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		// When this process also runs the worker (serve), the server hands
		// the send's first workflow task straight to it with the start,
		// saving a trip through the task queue; elsewhere the start is as
		// usual.
		EnableEagerStart: true,
		// What the Temporal UI shows: IDs and the count of recipients,
		// never an address nor the message.
		StaticSummary: workflows.SendSummary(in),
	}, workflows.Send, in)
	var started *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &started) {
		return nil
	}
	return err
}

var sendIDPattern = regexp.MustCompile(`^snd_[a-z2-7]{24}$`)

func (s *server) getSend(c *gin.Context) {
	row, ok := s.connection(c, accessRead)
	if !ok {
		return
	}
	id := c.Param("sid")
	if !sendIDPattern.MatchString(id) {
		problem(c, http.StatusNotFound, "send_not_found", "No send with this ID on this connection.")
		return
	}
	snd, err := s.d.Store.GetSend(c, row.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "send_not_found", "No send with this ID on this connection.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, toSendJSON(s.settleEnded(c, snd)))
}

// settleEnded records a send whose workflow ended without recording it
// (Terminate in the Temporal UI): queued, nothing went, and it is
// canceled; past that, the message may have gone, and it fails with
// workflow_ended, never to be sent again. A send is looked at only while
// it is not final; anything that cannot be asked leaves it as it stands.
func (s *server) settleEnded(ctx context.Context, snd store.Send) store.Send {
	if !store.SendStarted(snd.State) || store.SendFinal(snd.State) {
		return snd
	}
	dctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	desc, err := s.d.Temporal.DescribeWorkflowExecution(dctx, workflows.SendWorkflowID(snd.ConnectionID, snd.Key), "")
	if err != nil || desc.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return snd
	}
	state, reason := workflows.SendFailed, workflows.ReasonWorkflowEnded
	if snd.State == workflows.SendQueued {
		state = workflows.SendCanceled
	}
	text := workflows.SendReasonText[reason]
	err = s.d.Store.UpdateSend(ctx, snd.ID, store.SendUpdate{State: state, Reason: reason, ReasonText: text,
		Events: []store.Event{{ID: snd.ID + ":failed", ConnectionID: snd.ConnectionID, Type: workflows.EventSendFailed,
			Data: map[string]any{"send_id": snd.ID, "state": state, "reason": reason, "detail": text}}}})
	if err == nil {
		if got, err := s.d.Store.GetSend(ctx, snd.ConnectionID, snd.ID); err == nil {
			return got
		}
	}
	return snd
}

var sendStates = []string{workflows.SendDraft, workflows.SendQueued, workflows.SendSending, workflows.SendSent, workflows.SendFailed, workflows.SendCanceled, workflows.SendReauthRequired}

func (s *server) listSends(c *gin.Context) { s.listSendsIn(c, "") }

// listSendsIn lists a connection's (or an attached mailbox's) sends, in one
// state when state is given.
func (s *server) listSendsIn(c *gin.Context, state string) {
	var row store.Connection
	var m store.Mailbox
	ok := false
	if c.Param("mbx") == "" {
		row, ok = s.connection(c, accessRead)
	} else {
		row, m, ok = s.mailbox(c, accessRead)
	}
	if !ok {
		return
	}
	limit, ok := limitParam(c, 50, 200)
	if !ok {
		return
	}
	q := store.SendQuery{State: c.Query("state"), Limit: limit + 1}
	if state != "" {
		q.State = state
	}
	if m.ID != row.ID {
		q.MailboxID = m.ID // an attached mailbox's sends alone
	}
	if q.State != "" && !slices.Contains(sendStates, q.State) {
		problem(c, http.StatusBadRequest, "invalid_state", "state must be one of "+strings.Join(sendStates, ", ")+".")
		return
	}
	if cur := c.Query("cursor"); cur != "" {
		if !sendIDPattern.MatchString(cur) {
			problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out.")
			return
		}
		last, err := s.d.Store.GetSend(c, row.ID, cur)
		if errors.Is(err, store.ErrNotFound) {
			problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out.")
			return
		}
		if err != nil {
			s.unavailable(c, err)
			return
		}
		q.BeforeCreated, q.BeforeID = last.CreatedAt, last.ID
	}
	sends, err := s.d.Store.ListSends(c, row.ID, q)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	page := struct {
		Data       []sendJSON `json:"data"`
		NextCursor string     `json:"next_cursor,omitempty"`
	}{Data: []sendJSON{}}
	if len(sends) > limit {
		sends = sends[:limit]
		page.NextCursor = sends[limit-1].ID
	}
	for _, snd := range sends {
		page.Data = append(page.Data, toSendJSON(snd))
	}
	c.PureJSON(http.StatusOK, page)
}

// hashKind is what a request's hash is taken over besides its body: the
// kind of send and, from an attached mailbox, the mailbox, so that one
// key cannot name the same message from two mailboxes.
func (o origin) hashKind(kind string) string {
	if o.mailboxID == "" {
		return kind
	}
	return kind + "\x00" + o.mailboxID
}
