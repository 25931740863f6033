package graphsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// serveWrite routes the mailbox writes: sendMail, drafts, PATCH, DELETE,
// move and send (docs/graph.md#sending-mail). It reports false when the path is not a write.
func (s *Sim) serveWrite(g *graphRequest, o renderOpts) bool {
	n := g.nodes
	method := g.r.Method
	if len(n) == 1 && n[0].name == "sendmail" && method == http.MethodPost {
		s.sendMail(g)
		return true
	}
	// Resolve an optional folder prefix.
	var folder string
	if n[0].name == "mailfolders" && n[0].keyed {
		folder = n[0].key
		n = n[1:]
		for len(n) > 0 && n[0].name == "childfolders" && n[0].keyed {
			folder, n = n[0].key, n[1:]
		}
	}
	if len(n) == 0 || n[0].name != "messages" {
		return false
	}
	switch {
	case !n[0].keyed && len(n) == 1 && method == http.MethodPost:
		s.createDraft(g, folder, o)
	case n[0].keyed && len(n) == 1 && method == http.MethodPatch:
		s.patchMessage(g, n[0].key, o)
	case n[0].keyed && len(n) == 1 && method == http.MethodDelete:
		s.writeOp(g, n[0].key, func(mb *mailbox, m *Message) {
			mb.remove(m)
			g.w.WriteHeader(http.StatusNoContent)
		})
	case n[0].keyed && len(n) == 2 && n[1].name == "move" && method == http.MethodPost:
		s.moveMessage(g, n[0].key, o)
	case n[0].keyed && len(n) == 2 && n[1].name == "send" && method == http.MethodPost:
		s.sendDraft(g, n[0].key)
	case n[0].keyed && len(n) == 2 && isResponse(n[1].name) && method == http.MethodPost:
		s.respond(g, n[0].key, n[1].name, o)
	case n[0].keyed && len(n) == 2 && n[1].name == "attachments" && !n[1].keyed && method == http.MethodPost:
		s.addAttachment(g, n[0].key)
	case n[0].keyed && len(n) == 2 && n[1].name == "attachments" && n[1].keyed && method == http.MethodDelete:
		s.deleteAttachment(g, n[0].key, n[1].key)
	case n[0].keyed && len(n) == 3 && n[1].name == "attachments" && n[2].name == "createuploadsession" && method == http.MethodPost:
		s.createUploadSession(g, n[0].key)
	default:
		return false
	}
	return true
}

// writeOp runs fn on a message under the write lock.
func (s *Sim) writeOp(g *graphRequest, id string, fn func(*mailbox, *Message)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := g.target.mailbox
	m := mb.messageByID(id)
	if m == nil {
		errItemNotFound(g.w, g.r)
		return
	}
	fn(mb, m)
}

func decodeMessage(g *graphRequest) (*wireMessage, bool) {
	var w wireMessage
	raw, err := readBody(g)
	if err != nil {
		return nil, false
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		errBadRequest(g.w, g.r, "Empty Payload. JSON content expected.")
		return nil, false
	}
	return &w, true
}

func (s *Sim) writeMessageJSON(g *graphRequest, status int, m *Message, o renderOpts) {
	var buf bytes.Buffer
	writeMessage(&buf, m, nil, o)
	body := buf.Bytes()
	ctx := []byte(`{"@odata.context":"` + s.URL() + `/v1.0/$metadata#users('` + g.target.ID + `')/messages/$entity",`)
	writeRawJSON(g.w, status, append(ctx, body[1:]...))
}

// createDraft serves POST .../messages: a draft in Drafts or the folder.
func (s *Sim) createDraft(g *graphRequest, folder string, o renderOpts) {
	w, ok := decodeMessage(g)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, code, text := s.composeFrom(g.target, w, false)
	if code != "" {
		errBadRequestCode(g, code, text)
		return
	}
	if folder != "" {
		f := g.target.mailbox.folder(folder)
		if f == nil {
			errItemNotFound(g.w, g.r)
			return
		}
		m.FolderID = f.ID
	}
	for _, h := range w.InternetMessageHeaders {
		if m.headers == nil {
			m.headers = map[string]string{}
		}
		m.headers[strings.ToLower(h.Name)] = h.Value
	}
	g.target.mailbox.insert(m, s.clock.Now())
	s.writeMessageJSON(g, http.StatusCreated, m, o)
}

// patchMessage serves PATCH .../messages/{id}. Sent and received messages
// accept only a few properties; drafts accept all.
func (s *Sim) patchMessage(g *graphRequest, id string, o renderOpts) {
	raw, err := readBody(g)
	if err != nil {
		return
	}
	var fields map[string]json.RawMessage
	var w wireMessage
	if json.Unmarshal(raw, &fields) != nil || json.Unmarshal(raw, &w) != nil {
		errBadRequest(g.w, g.r, "Empty Payload. JSON content expected.")
		return
	}
	s.writeOp(g, id, func(mb *mailbox, m *Message) {
		if !m.IsDraft {
			for k := range fields {
				switch strings.ToLower(k) {
				case "isread", "categories", "flag", "importance", "inferenceclassification", "singlevalueextendedproperties":
				default:
					graphError(g.w, g.r, http.StatusBadRequest, "ErrorInvalidPropertyUpdateSentMessage", "Update operation is not supported on sent or received messages for the property '"+k+"'.")
					return
				}
			}
		}
		// Extended properties can be set on any message (docs/graph.md#extended-properties).
		if code, text := setExtProps(m, w.SingleValueExtendedProperties); code != "" {
			errBadRequestCode(g, code, text)
			return
		}
		up := MessageUpdate{IsRead: w.IsRead, Categories: w.Categories, Subject: w.Subject, Importance: w.Importance}
		if w.Flag != nil {
			up.Flag = &w.Flag.FlagStatus
		}
		applyUpdate(m, up)
		if m.IsDraft {
			if w.Body != nil {
				m.Body, m.BodyContentType = w.Body.Content, strings.ToLower(w.Body.ContentType)
				m.BodyPreview = preview(m.Body, m.BodyContentType)
			}
			if _, ok := fields["toRecipients"]; ok {
				m.To = recipientsOf(w.ToRecipients)
			}
			if _, ok := fields["ccRecipients"]; ok {
				m.Cc = recipientsOf(w.CcRecipients)
			}
			if _, ok := fields["bccRecipients"]; ok {
				m.Bcc = recipientsOf(w.BccRecipients)
			}
		}
		if w.InferenceClassification != nil {
			m.Inference = *w.InferenceClassification
		}
		mb.update(m, s.clock.Now())
		s.writeMessageJSON(g, http.StatusOK, m, o)
	})
}

// moveMessage serves POST .../messages/{id}/move {"destinationId"}: 201
// with the message, whose REST ID changes.
func (s *Sim) moveMessage(g *graphRequest, id string, o renderOpts) {
	var body struct {
		DestinationID string `json:"destinationId"`
	}
	if err := json.NewDecoder(io.LimitReader(g.r.Body, 1<<20)).Decode(&body); err != nil || body.DestinationID == "" {
		errBadRequest(g.w, g.r, "The destinationId parameter is required.")
		return
	}
	s.writeOp(g, id, func(mb *mailbox, m *Message) {
		f := mb.folder(body.DestinationID)
		if f == nil || f.ID == mb.rootID {
			graphError(g.w, g.r, http.StatusNotFound, "ErrorItemNotFound", "The specified folder could not be found in the store.")
			return
		}
		mb.move(m, f, s.clock.Now())
		s.writeMessageJSON(g, http.StatusCreated, m, o)
	})
}

// sendDraft serves POST .../messages/{id}/send, which needs Content-Length:
// 0 (docs/graph.md#sending-mail) and files the message in Sent Items. A
// draft already sent has left Drafts: its old REST ID is gone (404), and
// under its immutable ID it is no draft any more (400).
func (s *Sim) sendDraft(g *graphRequest, id string) {
	if g.r.Header.Get("Content-Length") == "" {
		graphError(g.w, g.r, http.StatusLengthRequired, "LengthRequired", "Length Required: the Content-Length header is required.")
		return
	}
	s.sendPrepared(g, "send", func() (*sendPlan, *sendErr) {
		m := g.target.mailbox.messageByID(id)
		if m == nil {
			return nil, &sendErr{http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store."}
		}
		if !m.IsDraft || m.FolderID == g.target.mailbox.wellKnown["outbox"] {
			return nil, &sendErr{http.StatusBadRequest, "ErrorInvalidOperation", "Only draft messages can be sent."}
		}
		from := ""
		if !strings.EqualFold(m.From.Address, g.target.Mail) {
			from = m.From.Address
		}
		if code, text := s.canSend(g, g.target, from); code != "" {
			return nil, &sendErr{http.StatusForbidden, code, text}
		}
		if len(m.To)+len(m.Cc)+len(m.Bcc) == 0 {
			return nil, &sendErr{http.StatusBadRequest, "ErrorInvalidRecipients", "At least one recipient isn't valid., A message can't be sent because it contains no recipients."}
		}
		return &sendPlan{m: m, save: true, headers: m.headers}, nil
	})
}
