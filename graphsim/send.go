package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// SendingOptions are Exchange Online's sending limits (docs/graph.md#sending-limits); personal
// accounts get the lower Personal* values (undocumented by Microsoft;
// secondary sources).
type SendingOptions struct {
	MaxRecipients           int // per message (500)
	DailyRecipients         int // rolling 24 h (10,000)
	PerMinute               int // messages a minute; more are carried over (30)
	PersonalMaxRecipients   int // (100)
	PersonalDailyRecipients int // (300)
	// MaxMessageSize caps a message with its attachments (35 MB, Exchange
	// Online's default; an admin can raise it to 150 MB).
	MaxMessageSize int64
	// UploadSessionLifetime is how long an attachment upload URL works
	// (docs/graph.md#upload-sessions; 2 h).
	UploadSessionLifetime time.Duration
}

func (o *SendingOptions) defaults() {
	set := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&o.MaxRecipients, 500)
	set(&o.DailyRecipients, 10000)
	set(&o.PerMinute, 30)
	set(&o.PersonalMaxRecipients, 100)
	set(&o.PersonalDailyRecipients, 300)
	if o.MaxMessageSize == 0 {
		o.MaxMessageSize = 35 << 20
	}
	if o.UploadSessionLifetime == 0 {
		o.UploadSessionLifetime = defaultLifetime
	}
}

// SentMail is the ground truth of one accepted send.
type SentMail struct {
	From              string            `json:"from"`
	Sender            string            `json:"sender"`
	To                []string          `json:"to"`
	Cc                []string          `json:"cc"`
	Bcc               []string          `json:"bcc"`
	Subject           string            `json:"subject"`
	InternetMessageID string            `json:"internetMessageId"`
	Headers           map[string]string `json:"headers,omitempty"`
	SavedToSentItems  bool              `json:"savedToSentItems"`
	SentItemID        string            `json:"sentItemId,omitempty"` // immutable ID of the Sent Items copy
	AcceptedAt        time.Time         `json:"acceptedAt"`
	DeliverAt         time.Time         `json:"deliverAt"`
	// Source is what sent it: sendMail, send (a draft), respond:reply,
	// respond:replyall or respond:forward.
	Source string `json:"source"`
	// Answer is what the client was told: 202, 504 or reset (the message
	// went all the same; docs/graph.md#ambiguous-send-answers).
	Answer string `json:"answer"`
	// ExtendedProperties of the message, by id.
	ExtendedProperties map[string]string `json:"extendedProperties,omitempty"`
	// Rejected is the NDR code when Exchange refused the message after
	// accepting the submission (5.1.90: over the daily recipient limit).
	Rejected string `json:"rejected,omitempty"`
	// SentItemAt is when the copy appeared in Sent Items.
	SentItemAt time.Time `json:"sentItemAt,omitempty"`
	// Deliveries lists every copy delivered, one per recipient address
	// (recipients outside the simulator have no Mailbox).
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery is one delivered copy of a sent message.
type Delivery struct {
	Sender             string            `json:"sender"` // the sending mailbox
	From               string            `json:"from"`
	Recipient          string            `json:"recipient"`
	Mailbox            string            `json:"mailbox,omitempty"`   // the simulator mailbox that got it
	MessageID          string            `json:"messageId,omitempty"` // immutable ID of the copy there
	Subject            string            `json:"subject"`
	InternetMessageID  string            `json:"internetMessageId"`
	ExtendedProperties map[string]string `json:"extendedProperties,omitempty"` // of the sent message
	At                 time.Time         `json:"at"`
}

// wireMessage is a message as clients write it.
type wireMessage struct {
	Subject *string `json:"subject"`
	Body    *struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	} `json:"body"`
	From          *wireRecipient  `json:"from"`
	ToRecipients  []wireRecipient `json:"toRecipients"`
	CcRecipients  []wireRecipient `json:"ccRecipients"`
	BccRecipients []wireRecipient `json:"bccRecipients"`
	ReplyTo       []wireRecipient `json:"replyTo"`
	Importance    *string         `json:"importance"`
	Categories    *[]string       `json:"categories"`
	IsRead        *bool           `json:"isRead"`
	Flag          *struct {
		FlagStatus string `json:"flagStatus"`
	} `json:"flag"`
	InferenceClassification *string `json:"inferenceClassification"`
	InternetMessageHeaders  []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"internetMessageHeaders"`
	Attachments []wireAttachment `json:"attachments"`
	// SingleValueExtendedProperties are set on the item (docs/graph.md#extended-properties).
	SingleValueExtendedProperties []ExtProp `json:"singleValueExtendedProperties"`
}

type wireRecipient struct {
	EmailAddress Recipient `json:"emailAddress"`
}

func recipientsOf(ws []wireRecipient) []Recipient {
	out := make([]Recipient, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.EmailAddress)
	}
	return out
}

func addresses(rs []Recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = strings.ToLower(r.Address)
	}
	return out
}

// canSend applies the sending permissions (docs/graph.md#sending-as-another-user): Mail.Send on one's
// own mailbox; Mail.Send.Shared and a send-as right for another; the
// application permission Mail.Send for any mailbox of the tenant.
func (s *Sim) canSend(g *graphRequest, mailbox *User, from string) (code, msg string) {
	p := g.p
	if !p.delegated() {
		if !p.has("Mail.Send") {
			return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
		}
		return "", ""
	}
	sendAs := func(owner *User) bool { return maySendFrom(owner, p.user.ID) }
	if mailbox.ID != p.user.ID {
		if !p.has("Mail.Send.Shared") {
			return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
		}
		if !sendAs(mailbox) {
			return "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account. Cannot submit message."
		}
		// Sending through the other mailbox also needs Full Access to it
		// (docs/graph.md#mailbox-rights).
		if !mailbox.rights[p.user.ID][RightFullAccess] {
			return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
		}
	} else if !p.has("Mail.Send", "Mail.Send.Shared") {
		return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
	}
	if from != "" && !strings.EqualFold(from, mailbox.Mail) {
		owner := s.user(from)
		if owner == nil || !sendAs(owner) {
			return "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account. Cannot submit message."
		}
	}
	return "", ""
}

// sendMail serves POST {me|users/x}/sendMail (docs/graph.md#sending-mail): JSON or base64 MIME.
func (s *Sim) sendMail(g *graphRequest) {
	body, err := readBody(g)
	if err != nil {
		return
	}
	var msg wireMessage
	save := true
	ct, _, _ := mime.ParseMediaType(g.r.Header.Get("Content-Type"))
	if ct == "text/plain" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(body)))
		if err != nil {
			graphError(g.w, g.r, http.StatusBadRequest, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
			return
		}
		if msg, err = parseMIME(raw); err != nil {
			graphError(g.w, g.r, http.StatusBadRequest, "ErrorMimeContentInvalid", "The MIME content is not valid: "+err.Error())
			return
		}
	} else {
		var req struct {
			Message         *wireMessage    `json:"message"`
			SaveToSentItems json.RawMessage `json:"saveToSentItems"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.Message == nil {
			errBadRequest(g.w, g.r, "Empty Payload. JSON content expected.")
			return
		}
		msg = *req.Message
		// The docs even send it as the string "false" (docs/graph.md#sending-mail).
		switch strings.Trim(strings.ToLower(string(req.SaveToSentItems)), `"`) {
		case "", "true", "null":
		case "false":
			save = false
		default:
			errBadRequest(g.w, g.r, "saveToSentItems must be true or false.")
			return
		}
	}
	s.sendPrepared(g, "sendMail", func() (*sendPlan, *sendErr) {
		from := ""
		if msg.From != nil {
			from = msg.From.EmailAddress.Address
		}
		if code, text := s.canSend(g, g.target, from); code != "" {
			return nil, &sendErr{http.StatusForbidden, code, text}
		}
		m, code, text := s.composeFrom(g.target, &msg, true)
		if code != "" {
			return nil, &sendErr{http.StatusBadRequest, code, text}
		}
		return &sendPlan{m: m, save: save, headers: headersOf(&msg)}, nil
	})
}

// sendPlan is a message ready to be submitted.
type sendPlan struct {
	m       *Message
	save    bool
	headers map[string]string
}

// sendErr is a refusal found while preparing a send.
type sendErr struct {
	status     int
	code, text string
}

// sendPrepared runs one send (sendMail, a draft's send, reply, replyAll,
// forward): prepare (under s.mu) validates and builds the message; then the
// send faults armed for the mailbox decide whether it is refused, lost, or
// submitted and how the answer goes (docs/graph.md#ambiguous-send-answers).
func (s *Sim) sendPrepared(g *graphRequest, source string, prepare func() (*sendPlan, *sendErr)) {
	s.mu.Lock()
	plan, e := prepare()
	if e == nil {
		s.stampSender(g.p, plan.m)
	}
	var outcome sendOutcome
	idx := len(s.sent[g.target.ID])
	if e == nil {
		// Drawn only for a valid send: one that fails validation fails as usual.
		outcome = s.sendFaults.draw(g.target)
		if !outcome.lost() {
			e = s.submit(g.target, plan, submitOpts{source: source, answer: outcome.answer(), sentItemsDelay: outcome.delay})
		}
	}
	s.mu.Unlock()
	if e != nil {
		graphError(g.w, g.r, e.status, e.code, e.text)
		return
	}
	if !s.answerSend(g, outcome) {
		// The connection could not be reset (inside $batch): it got a 504.
		s.mu.Lock()
		if log := s.sent[g.target.ID]; idx < len(log) {
			log[idx].Answer = "504"
		}
		s.mu.Unlock()
	}
}

// answer names what the client is told, for the ground truth.
func (o sendOutcome) answer() string {
	switch o.kind {
	case "delivered-504":
		return "504"
	case "delivered-reset":
		return "reset"
	}
	return "202"
}

// answerSend writes the answer to a send: 202 with an empty body, or the
// fault's answer (docs/graph.md#ambiguous-send-answers). It reports false
// when a reset was asked for but a 504 given instead.
func (s *Sim) answerSend(g *graphRequest, o sendOutcome) bool {
	retry := strconv.FormatFloat(o.retryAfter, 'f', -1, 64)
	if o.kind != "" {
		s.stats.fault("send", o.kind)
	}
	switch o.kind {
	case "blocked":
		graphError(g.w, g.r, http.StatusForbidden, "ErrorMessageSubmissionBlocked", "The sender is blocked from sending messages. Cannot submit message.")
	case "quota":
		graphError(g.w, g.r, http.StatusForbidden, "ErrorQuotaExceeded", "The mailbox is full: it can neither send nor save messages.")
	case "lost-503":
		g.w.Header().Set("Retry-After", retry)
		g.w.WriteHeader(http.StatusServiceUnavailable)
	case "lost-504", "delivered-504":
		graphError(g.w, g.r, http.StatusGatewayTimeout, "UnknownError", "The operation has timed out.")
	case "delivered-reset":
		if resetConnection(g.w) {
			return true
		}
		graphError(g.w, g.r, http.StatusGatewayTimeout, "UnknownError", "The operation has timed out.")
		return false
	case "accepted-retry-after":
		g.w.Header().Set("Retry-After", retry)
		g.w.WriteHeader(http.StatusAccepted)
	default:
		g.w.WriteHeader(http.StatusAccepted)
	}
	return true
}

// resetConnection drops the client's connection with a TCP reset, as a
// failing front end does; false when the connection cannot be taken over
// (inside $batch).
func resetConnection(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
	return true
}

func errBadRequestCode(g *graphRequest, code, text string) {
	graphError(g.w, g.r, http.StatusBadRequest, code, text)
}

func headersOf(msg *wireMessage) map[string]string {
	if len(msg.InternetMessageHeaders) == 0 {
		return nil
	}
	h := map[string]string{}
	for _, kv := range msg.InternetMessageHeaders {
		h[strings.ToLower(kv.Name)] = kv.Value
	}
	return h
}

// composeFrom builds a message owned by mailbox from what the client wrote.
func (s *Sim) composeFrom(mailbox *User, w *wireMessage, forSend bool) (*Message, string, string) {
	for _, h := range w.InternetMessageHeaders {
		if !strings.HasPrefix(strings.ToLower(h.Name), "x-") {
			return nil, "InvalidInternetMessageHeader", "The internet message header name '" + h.Name + "' should start with 'x-' or 'X-'."
		}
	}
	now := s.clock.Now()
	spec := MessageSpec{Folder: "drafts", IsDraft: true, IsRead: true}
	if w.Subject != nil {
		spec.Subject = *w.Subject
	}
	if w.Body != nil {
		spec.Body, spec.BodyType = w.Body.Content, w.Body.ContentType
	}
	spec.From = Recipient{Name: mailbox.DisplayName, Address: mailbox.Mail}
	if w.From != nil && w.From.EmailAddress.Address != "" {
		spec.From = w.From.EmailAddress
	}
	spec.To, spec.Cc, spec.Bcc = recipientsOf(w.ToRecipients), recipientsOf(w.CcRecipients), recipientsOf(w.BccRecipients)
	if w.Importance != nil {
		spec.Importance = *w.Importance
	}
	if w.Categories != nil {
		spec.Categories = *w.Categories
	}
	for _, a := range w.Attachments {
		as, code, text := a.spec()
		if code != "" {
			return nil, code, text
		}
		spec.Attachments = append(spec.Attachments, as)
	}
	if forSend && len(spec.To)+len(spec.Cc)+len(spec.Bcc) == 0 {
		return nil, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients."
	}
	for _, r := range append(append(slicesClone(spec.To), spec.Cc...), spec.Bcc...) {
		if !strings.Contains(r.Address, "@") {
			return nil, "ErrorInvalidRecipients", "At least one recipient isn't valid., Recipient '" + r.Address + "' isn't resolved. All recipients must be resolved before a message can be submitted."
		}
	}
	m, err := s.buildMessage(mailbox, &spec, now)
	if err != nil {
		return nil, "ErrorItemNotFound", err.Error()
	}
	m.ReplyTo = recipientsOf(w.ReplyTo)
	if code, text := setExtProps(m, w.SingleValueExtendedProperties); code != "" {
		return nil, code, text
	}
	if w.From != nil && w.From.EmailAddress.Address != "" {
		// Send As: from is the other mailbox; Graph sets sender (docs/graph.md#sending-as-another-user).
		m.Sender = Recipient{Name: mailbox.DisplayName, Address: mailbox.Mail}
	}
	return m, "", ""
}

func slicesClone(rs []Recipient) []Recipient { return append([]Recipient(nil), rs...) }

// submitOpts says where a send came from and what its client is told.
type submitOpts struct {
	source         string // sendMail, send, respond:reply, ...
	answer         string // 202, 504, reset
	sentItemsDelay time.Duration
}

// submit enforces the sending limits, then delivers the message (now, or
// carried over to a later minute) to the simulator's recipients and to
// Sent Items. Over the daily recipient limit the submission is accepted
// and fails afterwards with a non-delivery report (docs/graph.md#sending-limits).
// The caller holds s.mu.
func (s *Sim) submit(mailbox *User, p *sendPlan, opt submitOpts) *sendErr {
	m := p.m
	o := s.opts.Sending
	maxRcpt, daily := o.MaxRecipients, o.DailyRecipients
	if s.tenants[mailbox.TenantID].Personal {
		maxRcpt, daily = o.PersonalMaxRecipients, o.PersonalDailyRecipients
	}
	n := len(m.To) + len(m.Cc) + len(m.Bcc)
	if n > maxRcpt {
		// The exact Graph code is not documented (docs/graph.md#sending-limits).
		return &sendErr{http.StatusBadRequest, "ErrorTooManyRecipients", fmt.Sprintf("The message has %d recipients; the limit is %d.", n, maxRcpt)}
	}
	now := s.clock.Now()
	log := s.sent[mailbox.ID]
	used := 0
	var lastMinute []time.Time
	for _, sm := range log {
		if now.Sub(sm.AcceptedAt) < 24*time.Hour && sm.Rejected == "" {
			used += len(sm.To) + len(sm.Cc) + len(sm.Bcc)
		}
		if sm.DeliverAt.After(now.Add(-time.Minute)) {
			lastMinute = append(lastMinute, sm.DeliverAt)
		}
	}
	// Over the per-minute rate, a message is carried over to a later
	// minute rather than refused (docs/graph.md#sending-limits).
	deliverAt := now
	if len(lastMinute) >= o.PerMinute {
		deliverAt = lastMinute[len(lastMinute)-o.PerMinute].Add(time.Minute)
	}
	sm := SentMail{
		From: strings.ToLower(m.From.Address), Sender: strings.ToLower(m.Sender.Address), To: addresses(m.To), Cc: addresses(m.Cc), Bcc: addresses(m.Bcc),
		Subject: m.Subject, InternetMessageID: m.InternetMessageID, Headers: p.headers, SavedToSentItems: p.save, AcceptedAt: now, DeliverAt: deliverAt,
		Source: opt.source, Answer: opt.answer, ExtendedProperties: extPropMap(m.ExtProps),
	}
	if p.save {
		sm.SentItemID = m.ImmutableID
	}
	if used+n > daily {
		sm.Rejected = "5.1.90"
	}
	idx := len(log)
	s.sent[mailbox.ID] = append(log, sm)
	s.stats.add("mail.sent", 1)
	// A submitted draft leaves Drafts at once, carried over or not.
	if _, isDraft := mailbox.mailbox.messages[m.ImmutableID]; isDraft {
		mailbox.mailbox.move(m, mailbox.mailbox.folder("outbox"), now)
	}
	if sm.Rejected != "" {
		// Refused at submission, before any carry-over: the sender gets
		// the non-delivery report at once.
		now := now.Truncate(time.Second)
		m.IsDraft, m.Sent, m.Received = false, now, now
		s.fileSentCopy(mailbox, m, p.save, idx, opt.sentItemsDelay)
		s.bounce(mailbox, m, now)
		return nil
	}
	deliver := func() { s.deliverSent(mailbox, m, p.save, idx, opt.sentItemsDelay) }
	if wait := deliverAt.Sub(now); wait > 0 {
		s.stats.add("mail.carried_over", 1)
		time.AfterFunc(wait, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			deliver()
		})
	} else {
		deliver()
	}
	return nil
}

// deliverSent files the sent copy (after delay, in Outbox meanwhile) and
// delivers to recipients who have a mailbox in the simulator, recording
// every copy in the ground truth of send idx. The caller holds s.mu.
func (s *Sim) deliverSent(mailbox *User, m *Message, save bool, idx int, delay time.Duration) {
	now := s.clock.Now().Truncate(time.Second)
	m.IsDraft, m.Sent, m.Received = false, now, now
	s.fileSentCopy(mailbox, m, save, idx, delay)
	sm := &s.sent[mailbox.ID][idx]
	seen := map[string]bool{} // addresses and mailboxes served: one copy each
	for _, r := range append(append(slicesClone(m.To), m.Cc...), m.Bcc...) {
		addr := strings.ToLower(r.Address)
		if seen[addr] {
			continue
		}
		seen[addr] = true
		d := Delivery{Sender: strings.ToLower(mailbox.Mail), From: strings.ToLower(m.From.Address), Recipient: addr, Subject: m.Subject,
			InternetMessageID: m.InternetMessageID, ExtendedProperties: sm.ExtendedProperties, At: now}
		u := s.userByName[addr]
		if u == nil || u.mailbox == nil {
			sm.Deliveries = append(sm.Deliveries, d)
			continue
		}
		if seen[u.ID] {
			continue
		}
		seen[u.ID] = true
		in, _ := s.buildMessage(u, &MessageSpec{
			Folder: "inbox", Subject: m.Subject, From: m.From, To: m.To, Cc: m.Cc, Body: m.Body, BodyType: m.BodyContentType,
			Received: now, Sent: now, Importance: m.Importance, InternetMessageID: m.InternetMessageID,
		}, now)
		in.Sender = m.Sender
		for _, a := range m.Attachments {
			cp := *a
			in.Attachments = append(in.Attachments, &cp)
		}
		u.mailbox.insert(in, now)
		d.Mailbox, d.MessageID = strings.ToLower(u.UPN), in.ImmutableID
		sm.Deliveries = append(sm.Deliveries, d)
		s.delivered[u.ID] = append(s.delivered[u.ID], d)
		s.stats.add("mail.delivered", 1)
	}
}

// fileSentCopy puts the sent message in Sent Items (a draft moves there; a
// sendMail message is inserted), or drops the draft when the copy is not
// saved. With a delay the copy waits in Outbox. The caller holds s.mu.
func (s *Sim) fileSentCopy(mailbox *User, m *Message, save bool, idx int, delay time.Duration) {
	mb := mailbox.mailbox
	place := func(f *Folder) {
		now := s.clock.Now()
		if _, inMailbox := mb.messages[m.ImmutableID]; inMailbox {
			mb.move(m, f, now)
		} else {
			m.FolderID = f.ID
			mb.insert(m, now)
		}
	}
	if !save {
		if _, inMailbox := mb.messages[m.ImmutableID]; inMailbox {
			mb.remove(m)
		}
		return
	}
	if delay <= 0 {
		place(mb.folder("sentitems"))
		s.sent[mailbox.ID][idx].SentItemAt = s.clock.Now()
		return
	}
	place(mb.folder("outbox"))
	time.AfterFunc(delay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := mb.messages[m.ImmutableID]; !ok {
			return
		}
		place(mb.folder("sentitems"))
		s.sent[mailbox.ID][idx].SentItemAt = s.clock.Now()
	})
}

// bounce delivers Exchange's non-delivery report for a send over the
// daily recipient limit to the sender's Inbox (docs/graph.md#sending-limits).
func (s *Sim) bounce(mailbox *User, m *Message, now time.Time) {
	domain := domainOf(mailbox.Mail, "sim.example")
	ndr, err := s.buildMessage(mailbox, &MessageSpec{
		Folder: "inbox", Subject: "Undeliverable: " + m.Subject,
		From:     Recipient{Name: "Microsoft Outlook", Address: "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@" + domain},
		To:       []Recipient{{Name: mailbox.DisplayName, Address: mailbox.Mail}},
		BodyType: "text", Body: "Your message can't be sent because you've reached your daily limit for message recipients.\n\n550 5.1.90 Your message can't be sent because you've reached your daily limit for message recipients.",
		Received: now,
	}, now)
	if err == nil {
		mailbox.mailbox.insert(ndr, now)
	}
}

// parseMIME reads a MIME message for sendMail's MIME variant.
func parseMIME(raw []byte) (wireMessage, error) {
	var w wireMessage
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return w, err
	}
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(msg.Header.Get("Subject"))
	w.Subject = &subject
	list := func(h string) []wireRecipient {
		addrs, _ := msg.Header.AddressList(h)
		out := make([]wireRecipient, 0, len(addrs))
		for _, a := range addrs {
			out = append(out, wireRecipient{EmailAddress: Recipient{Name: a.Name, Address: a.Address}})
		}
		return out
	}
	w.ToRecipients, w.CcRecipients, w.BccRecipients = list("To"), list("Cc"), list("Bcc")
	if from := list("From"); len(from) == 1 {
		w.From = &from[0]
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return w, err
	}
	ctype := "text"
	if mt, _, _ := mime.ParseMediaType(msg.Header.Get("Content-Type")); mt == "text/html" {
		ctype = "html"
	}
	w.Body = &struct {
		ContentType string `json:"contentType"`
		Content     string `json:"content"`
	}{ctype, string(body)}
	return w, nil
}

// maxRequestBytes is Graph's limit on a request body: 4 MB, attachments
// in base64 included (docs/graph.md#attachments).
const maxRequestBytes = 4 << 20

var errTooLarge = errors.New("graphsim: request body over 4 MB")

// errRequestTooLarge answers a request body over the limit as Graph does
// (observed; docs/graph.md#attachments).
func errRequestTooLarge(g *graphRequest) {
	errBadRequest(g.w, g.r, "The maximum request length supported is 4MB.")
}

// wireAttachment is a file attachment as clients write it.
type wireAttachment struct {
	Type         string `json:"@odata.type"`
	Name         string `json:"name"`
	ContentType  string `json:"contentType"`
	ContentBytes string `json:"contentBytes"`
	IsInline     bool   `json:"isInline"`
	ContentID    string `json:"contentId"`
}

// spec checks a written attachment: only file attachments, with base64
// content.
func (a wireAttachment) spec() (AttachmentSpec, string, string) {
	if a.Type != "" && a.Type != "#microsoft.graph.fileAttachment" && a.Type != "microsoft.graph.fileAttachment" {
		return AttachmentSpec{}, "ErrorInvalidParameter", "Only file attachments are supported by the simulator."
	}
	if strings.TrimSpace(a.Name) == "" {
		return AttachmentSpec{}, "ErrorInvalidParameter", "The attachment must have a name."
	}
	content, err := base64.StdEncoding.DecodeString(a.ContentBytes)
	if err != nil {
		return AttachmentSpec{}, "ErrorInvalidParameter", "The attachment '" + a.Name + "' has invalid contentBytes."
	}
	return AttachmentSpec{Name: a.Name, ContentType: a.ContentType, Content: content, Inline: a.IsInline}, "", ""
}

// readBody reads a request body within Graph's request size limit
// (docs/graph.md#attachments), answering the client itself on failure.
func readBody(g *graphRequest) ([]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(g.r.Body, maxRequestBytes+1))
	if err != nil {
		errBadRequest(g.w, g.r, "The request body could not be read.")
		return nil, err
	}
	if len(raw) > maxRequestBytes {
		errRequestTooLarge(g)
		return nil, errTooLarge
	}
	return raw, nil
}
