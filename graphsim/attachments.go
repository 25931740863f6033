package graphsim

import (
	"encoding/json"
	"net/http"
	"slices"
)

// newAttachment builds a stored attachment of message m.
func (s *Sim) newAttachment(m *Message, as AttachmentSpec, contentID string) *Attachment {
	ct := as.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &Attachment{
		ID: exchangeID("AAMkAGIAtt", m.ImmutableID, as.Name, randomToken(6)), Name: as.Name, ContentType: ct,
		Content: as.Content, IsInline: as.Inline, ContentID: contentID, Modified: s.clock.Now(),
	}
}

// addAttachment serves POST .../messages/{id}/attachments: a file
// attachment under Graph's 4 MB request limit (3 MB of file in practice),
// answered 201 with the attachment (docs/graph.md#attachments).
func (s *Sim) addAttachment(g *graphRequest, id string) {
	raw, err := readBody(g)
	if err != nil {
		return
	}
	var w wireAttachment
	if err := json.Unmarshal(raw, &w); err != nil {
		errBadRequest(g.w, g.r, "Empty Payload. JSON content expected.")
		return
	}
	as, code, text := w.spec()
	if code != "" {
		errBadRequestCode(g, code, text)
		return
	}
	s.writeOp(g, id, func(mb *mailbox, m *Message) {
		a := s.newAttachment(m, as, w.ContentID)
		m.Attachments = append(m.Attachments, a)
		mb.update(m, s.clock.Now())
		body := attachmentJSON(a)
		body["@odata.context"] = s.URL() + "/v1.0/$metadata#users('" + g.target.ID + "')/messages('" + m.ImmutableID + "')/attachments/$entity"
		writeJSON(g.w, http.StatusCreated, body)
	})
}

// deleteAttachment serves DELETE .../messages/{id}/attachments/{id}: 204.
func (s *Sim) deleteAttachment(g *graphRequest, id, attID string) {
	s.writeOp(g, id, func(mb *mailbox, m *Message) {
		i := slices.IndexFunc(m.Attachments, func(a *Attachment) bool { return a.ID == attID })
		if i < 0 {
			errItemNotFound(g.w, g.r)
			return
		}
		m.Attachments = slices.Delete(m.Attachments, i, i+1)
		mb.update(m, s.clock.Now())
		g.w.WriteHeader(http.StatusNoContent)
	})
}
