package graphsim

import (
	"encoding/json"
	"html"
	"net/http"
	"strings"
)

// Kinds of response to a message (docs/graph.md#replying-and-forwarding).
const (
	respondReply    = "reply"
	respondReplyAll = "replyall"
	respondForward  = "forward"
)

// responseKind maps an action segment (createReply, replyAll, ...) to the
// kind of response and whether it is sent at once.
func responseKind(action string) (kind string, sendNow, ok bool) {
	switch action {
	case "createreply":
		return respondReply, false, true
	case "createreplyall":
		return respondReplyAll, false, true
	case "createforward":
		return respondForward, false, true
	case "reply", "replyall", "forward":
		return action, true, true
	}
	return "", false, false
}

// isResponse reports the reply and forward actions.
func isResponse(action string) bool {
	_, _, ok := responseKind(action)
	return ok
}

// isSendResponse reports the actions that send at once.
func isSendResponse(action string) bool {
	_, sendNow, ok := responseKind(action)
	return ok && sendNow
}

// responseBody is the optional body of createReply and its kin: a comment
// or a message (not both with a body), and for forwards the recipients.
type responseBody struct {
	Comment      *string         `json:"comment"`
	Message      *wireMessage    `json:"message"`
	ToRecipients []wireRecipient `json:"toRecipients"`
}

func decodeResponseBody(g *graphRequest) (responseBody, bool) {
	var b responseBody
	raw, err := readBody(g)
	if err != nil {
		return b, false
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return b, true
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		errBadRequest(g.w, g.r, "Empty Payload. JSON content expected.")
		return b, false
	}
	if b.Comment != nil && b.Message != nil && b.Message.Body != nil {
		// Documented: specifying both answers 400.
		errBadRequest(g.w, g.r, "A comment and a message body cannot both be specified.")
		return b, false
	}
	return b, true
}

// prefixed puts prefix before a subject that does not already carry it.
func prefixed(prefix, subject string) string {
	if strings.HasPrefix(strings.ToUpper(subject), strings.ToUpper(prefix)) {
		return subject
	}
	return prefix + subject
}

// without drops the mailbox's own address, the addresses of skip and
// duplicates from rs.
func without(self string, rs []Recipient, skip ...Recipient) []Recipient {
	seen := map[string]bool{strings.ToLower(self): true}
	for _, r := range skip {
		seen[strings.ToLower(r.Address)] = true
	}
	var out []Recipient
	for _, r := range rs {
		a := strings.ToLower(r.Address)
		if seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, r)
	}
	return out
}

// buildResponse makes the draft of a reply, reply-all or forward of orig in
// the mailbox's Drafts: same conversation, prefixed subject, recipients as
// Outlook sets them (replyTo before from), the original quoted below the
// comment. The caller holds s.mu.
func (s *Sim) buildResponse(u *User, orig *Message, kind string, b responseBody) (*Message, string, string) {
	w := wireMessage{}
	if b.Message != nil {
		w = *b.Message
	}
	m, code, text := s.composeFrom(u, &w, false)
	if code != "" {
		return nil, code, text
	}
	m.ConversationID = orig.ConversationID
	prefix := "RE: "
	if kind == respondForward {
		prefix = "FW: "
	}
	if w.Subject == nil {
		m.Subject = prefixed(prefix, orig.Subject)
	}
	sender := orig.ReplyTo
	if len(sender) == 0 {
		sender = []Recipient{orig.From}
	}
	switch kind {
	case respondReply:
		if w.ToRecipients == nil {
			m.To = without(u.Mail, sender)
		}
	case respondReplyAll:
		if w.ToRecipients == nil {
			m.To = without(u.Mail, append(slicesClone(sender), orig.To...))
		}
		if w.CcRecipients == nil {
			m.Cc = without(u.Mail, orig.Cc, m.To...)
		}
	case respondForward:
		if len(b.ToRecipients) > 0 {
			m.To = recipientsOf(b.ToRecipients)
		}
		for _, a := range orig.Attachments {
			cp := *a
			cp.ID = exchangeID("AAMkAGIAtt", m.ImmutableID, a.Name, randomToken(6))
			m.Attachments = append(m.Attachments, &cp)
		}
	}
	if w.Body == nil {
		comment := ""
		if b.Comment != nil {
			comment = *b.Comment
		}
		m.Body, m.BodyContentType = quoteOriginal(comment, orig), "html"
		m.BodyPreview = preview(m.Body, "html")
	}
	return m, "", ""
}

// quoteOriginal is the body of a response: the comment, then the original
// message below a separator, as Outlook writes it.
func quoteOriginal(comment string, orig *Message) string {
	quoted := orig.Body
	if orig.BodyContentType != "html" {
		quoted = html.EscapeString(orig.Body)
	}
	return "<html><body><div>" + html.EscapeString(comment) + "</div><hr><div><b>From:</b> " + html.EscapeString(orig.From.Name+" <"+orig.From.Address+">") +
		"<br><b>Subject:</b> " + html.EscapeString(orig.Subject) + "</div><div>" + quoted + "</div></body></html>"
}

// respond serves POST .../messages/{id}/{createReply|createReplyAll|
// createForward|reply|replyAll|forward}: the create* actions answer 201 with
// the new draft, the others send at once and answer 202
// (docs/graph.md#replying-and-forwarding).
func (s *Sim) respond(g *graphRequest, id, action string, o renderOpts) {
	kind, sendNow, _ := responseKind(action)
	b, ok := decodeResponseBody(g)
	if !ok {
		return
	}
	if !sendNow {
		s.mu.Lock()
		defer s.mu.Unlock()
		orig := g.target.mailbox.messageByID(id)
		if orig == nil {
			errItemNotFound(g.w, g.r)
			return
		}
		m, code, text := s.buildResponse(g.target, orig, kind, b)
		if code != "" {
			errBadRequestCode(g, code, text)
			return
		}
		g.target.mailbox.insert(m, s.clock.Now())
		s.writeMessageJSON(g, http.StatusCreated, m, o)
		return
	}
	if kind == respondForward && len(b.ToRecipients) == 0 && (b.Message == nil || len(b.Message.ToRecipients) == 0) {
		errBadRequestCode(g, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients.")
		return
	}
	s.sendPrepared(g, "respond:"+kind, func() (*sendPlan, *sendErr) {
		if code, text := s.canSend(g, g.target, ""); code != "" {
			return nil, &sendErr{http.StatusForbidden, code, text}
		}
		orig := g.target.mailbox.messageByID(id)
		if orig == nil {
			return nil, &sendErr{http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store."}
		}
		m, code, text := s.buildResponse(g.target, orig, kind, b)
		if code != "" {
			return nil, &sendErr{http.StatusBadRequest, code, text}
		}
		return &sendPlan{m: m, save: true}, nil
	})
}
