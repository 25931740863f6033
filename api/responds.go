package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// respondRequest is the body of a reply, reply-all or forward to a synced
// message. Recipients given replace the ones Outlook would address
// (docs/graph.md#replying-and-forwarding); a forward needs them.
type respondRequest struct {
	// Comment is the text over the quoted original.
	Comment     string             `json:"comment"`
	To          []recipientJSON    `json:"to"`
	Cc          []recipientJSON    `json:"cc"`
	Bcc         []recipientJSON    `json:"bcc"`
	Importance  string             `json:"importance"`
	Headers     []headerJSON       `json:"headers"`
	Attachments []attachmentInJSON `json:"attachments"`
	NoQueue     bool               `json:"no_queue"`
}

// respondKinds maps the routes' actions to the kinds of sends.
var respondKinds = map[string]string{"reply": "reply", "reply-all": "reply_all", "forward": "forward"}

// respond answers a synced message: a reply, a reply-all or a forward,
// sent in its thread exactly once, as a send.
func (s *server) respond(action string) gin.HandlerFunc {
	kind := respondKinds[action]
	return func(c *gin.Context) {
		o, ok := s.sendingFrom(c)
		if !ok {
			return
		}
		row := o.row
		if o.method != workflows.SendByDraft {
			problem(c, http.StatusForbidden, "read_write_not_granted", "Replies and forwards are drafts made from a synced message; this connection may only send (Mail.ReadWrite was not granted).")
			return
		}
		key, ok := idempotencyKey(c)
		if !ok {
			return
		}
		mid := c.Param("mid")
		if !graphID(mid) {
			problem(c, http.StatusNotFound, "message_not_found", "This connection has no message with this ID.")
			return
		}
		var req respondRequest
		if !bindUpTo(c, &req, maxSendBody) {
			return
		}
		orig, err := s.d.Store.GetMessage(c, o.key, mid)
		if errors.Is(err, store.ErrNotFound) {
			problem(c, http.StatusNotFound, "message_not_found", "This connection has no synced message with this ID.")
			return
		} else if err != nil {
			s.unavailable(c, err)
			return
		}
		if kind == "forward" && len(req.To)+len(req.Cc)+len(req.Bcc) == 0 {
			problem(c, http.StatusUnprocessableEntity, "no_recipients", "A forward needs at least one recipient in to, cc or bcc.")
			return
		}
		full := sendRequest{To: req.To, Cc: req.Cc, Bcc: req.Bcc, Body: &sendBodyJSON{ContentType: "text", Content: req.Comment},
			Importance: req.Importance, Headers: req.Headers, Attachments: req.Attachments, NoQueue: req.NoQueue}
		msg, atts, bad := full.check(row.TenantID == consumerTenant, false)
		if bad != nil {
			problem(c, http.StatusUnprocessableEntity, bad.code, capitalize(bad.detail))
			return
		}
		msg.InReplyTo = mid
		if !s.withUploads(c, o, workflows.SendID(row.ID, key), msg, atts) {
			return
		}
		snd := store.Send{ID: workflows.SendID(row.ID, key), ConnectionID: row.ID, MailboxID: o.mailboxID, Key: key, Kind: kind, Message: msg,
			RequestHash: requestHash(o.hashKind(kind)+"\x00"+mid, req)}
		// Outlook addresses a reply to one, a reply-all to everyone on the
		// original: what the rates count when the app names nobody.
		switch {
		case msg.Recipients() > 0:
		case kind == "reply_all":
			snd.Recipients = 1 + len(orig.To) + len(orig.Cc)
		default:
			snd.Recipients = 1
		}
		s.startSend(c, o, snd, atts, req.NoQueue)
	}
}

// idempotencyKey reads the required Idempotency-Key, or answers the
// problem.
func idempotencyKey(c *gin.Context) (string, bool) {
	key := c.GetHeader("Idempotency-Key")
	if key == "" {
		problem(c, http.StatusBadRequest, "idempotency_key_required", "Every send needs an Idempotency-Key header: the same key sends a message once, however often the request is retried.")
		return "", false
	}
	if !keyPattern.MatchString(key) || strings.TrimSpace(key) != key {
		problem(c, http.StatusBadRequest, "invalid_idempotency_key", "The Idempotency-Key must be 1 to 255 visible ASCII characters, such as a UUID.")
		return "", false
	}
	return key, true
}
