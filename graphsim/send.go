package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
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
	Attachments []struct {
		Type         string `json:"@odata.type"`
		Name         string `json:"name"`
		ContentType  string `json:"contentType"`
		ContentBytes string `json:"contentBytes"`
		IsInline     bool   `json:"isInline"`
	} `json:"attachments"`
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
	sendAs := func(owner *User) bool { return owner.rights[p.user.ID][RightSendAs] }
	if mailbox.ID != p.user.ID {
		if !p.has("Mail.Send.Shared") {
			return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
		}
		if !sendAs(mailbox) {
			return "ErrorSendAsDenied", "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account. Cannot submit message."
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
	body, err := io.ReadAll(io.LimitReader(g.r.Body, 40<<20))
	if err != nil {
		errBadRequest(g.w, g.r, "The request body could not be read.")
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
	s.mu.Lock()
	defer s.mu.Unlock()
	from := ""
	if msg.From != nil {
		from = msg.From.EmailAddress.Address
	}
	if code, text := s.canSend(g, g.target, from); code != "" {
		graphError(g.w, g.r, http.StatusForbidden, code, text)
		return
	}
	m, code, text := s.composeFrom(g.target, &msg, true)
	if code != "" {
		errBadRequestCode(g, code, text)
		return
	}
	if status, code, text := s.submit(g.target, m, save, headersOf(&msg)); code != "" {
		graphError(g.w, g.r, status, code, text)
		return
	}
	g.w.WriteHeader(http.StatusAccepted)
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
		if a.Type != "" && a.Type != "#microsoft.graph.fileAttachment" {
			return nil, "ErrorInvalidParameter", "Only file attachments are supported by the simulator."
		}
		content, err := base64.StdEncoding.DecodeString(a.ContentBytes)
		if err != nil {
			return nil, "ErrorInvalidParameter", "The attachment '" + a.Name + "' has invalid contentBytes."
		}
		spec.Attachments = append(spec.Attachments, AttachmentSpec{Name: a.Name, ContentType: a.ContentType, Content: content, Inline: a.IsInline})
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

// submit enforces the sending limits, then delivers m (now, or carried over
// to a later minute) to the simulator's recipients and to Sent Items. The
// caller holds s.mu.
func (s *Sim) submit(mailbox *User, m *Message, save bool, headers map[string]string) (status int, code, msg string) {
	o := s.opts.Sending
	maxRcpt, daily := o.MaxRecipients, o.DailyRecipients
	if s.tenants[mailbox.TenantID].Personal {
		maxRcpt, daily = o.PersonalMaxRecipients, o.PersonalDailyRecipients
	}
	n := len(m.To) + len(m.Cc) + len(m.Bcc)
	if n > maxRcpt {
		// The exact Graph code is not documented (docs/graph.md#sending-limits).
		return http.StatusBadRequest, "ErrorTooManyRecipients", fmt.Sprintf("The message has %d recipients; the limit is %d.", n, maxRcpt)
	}
	now := s.clock.Now()
	log := s.sent[mailbox.ID]
	used := 0
	var lastMinute []time.Time
	for _, sm := range log {
		if now.Sub(sm.AcceptedAt) < 24*time.Hour {
			used += len(sm.To) + len(sm.Cc) + len(sm.Bcc)
		}
		if sm.DeliverAt.After(now.Add(-time.Minute)) {
			lastMinute = append(lastMinute, sm.DeliverAt)
		}
	}
	if used+n > daily {
		return http.StatusForbidden, "ErrorSubmissionQuotaExceeded", fmt.Sprintf("Cannot submit message: SubmissionQuotaExceededException; the mailbox has sent to %d recipients in the last 24 hours, and its limit is %d.", used, daily)
	}
	// Over the per-minute rate, a message is carried over to a later
	// minute rather than refused (docs/graph.md#sending-limits).
	deliverAt := now
	if len(lastMinute) >= o.PerMinute {
		deliverAt = lastMinute[len(lastMinute)-o.PerMinute].Add(time.Minute)
	}
	sm := SentMail{
		From: strings.ToLower(m.From.Address), Sender: strings.ToLower(mailbox.Mail), To: addresses(m.To), Cc: addresses(m.Cc), Bcc: addresses(m.Bcc),
		Subject: m.Subject, InternetMessageID: m.InternetMessageID, Headers: headers, SavedToSentItems: save, AcceptedAt: now, DeliverAt: deliverAt,
	}
	if save {
		sm.SentItemID = m.ImmutableID
	}
	s.sent[mailbox.ID] = append(log, sm)
	s.stats.add("mail.sent", 1)
	deliver := func() {
		s.deliverSent(mailbox, m, save)
	}
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
	return 0, "", ""
}

// deliverSent files the sent copy and delivers to recipients who have a
// mailbox in the simulator. The caller holds s.mu.
func (s *Sim) deliverSent(mailbox *User, m *Message, save bool) {
	now := s.clock.Now().Truncate(time.Second)
	m.IsDraft, m.Sent, m.Received = false, now, now
	if save {
		sentItems := mailbox.mailbox.folder("sentitems")
		if _, inMailbox := mailbox.mailbox.messages[m.ImmutableID]; inMailbox {
			mailbox.mailbox.move(m, sentItems, now)
		} else {
			m.FolderID = sentItems.ID
			mailbox.mailbox.insert(m, now)
		}
	} else if _, inMailbox := mailbox.mailbox.messages[m.ImmutableID]; inMailbox {
		mailbox.mailbox.remove(m)
	}
	seen := map[string]bool{}
	for _, r := range append(append(slicesClone(m.To), m.Cc...), m.Bcc...) {
		addr := strings.ToLower(r.Address)
		u := s.userByName[addr]
		if u == nil || u.mailbox == nil || seen[u.ID] {
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
		s.stats.add("mail.delivered", 1)
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
