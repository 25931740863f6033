package api

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/mailreader"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

type recipientJSON struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

type attachmentJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	IsInline    bool   `json:"is_inline"`
}

type bodyJSON struct {
	ContentType string `json:"content_type"`
	Content     string `json:"content"`
	// Source is "store" (synced) or "graph" (fetched for this request).
	Source string `json:"source"`
}

type messageJSON struct {
	ID                string           `json:"id"`
	FolderID          string           `json:"folder_id"`
	ConversationID    string           `json:"conversation_id,omitempty"`
	InternetMessageID string           `json:"internet_message_id,omitempty"`
	Subject           string           `json:"subject"`
	From              recipientJSON    `json:"from"`
	To                []recipientJSON  `json:"to"`
	Cc                []recipientJSON  `json:"cc"`
	Bcc               []recipientJSON  `json:"bcc"`
	ReceivedAt        *time.Time       `json:"received_at,omitempty"`
	SentAt            *time.Time       `json:"sent_at,omitempty"`
	IsRead            bool             `json:"is_read"`
	IsDraft           bool             `json:"is_draft"`
	Categories        []string         `json:"categories"`
	Importance        string           `json:"importance,omitempty"`
	HasAttachments    bool             `json:"has_attachments"`
	BodyPreview       string           `json:"body_preview"`
	Attachments       []attachmentJSON `json:"attachments"`
	Body              *bodyJSON        `json:"body,omitempty"`
}

func recipients(rs []store.Recipient) []recipientJSON {
	out := make([]recipientJSON, 0, len(rs))
	for _, r := range rs {
		out = append(out, recipientJSON{Name: r.Name, Address: r.Address})
	}
	return out
}

func messageView(m store.Message) messageJSON {
	out := messageJSON{
		ID: m.ID, FolderID: m.FolderID, ConversationID: m.ConversationID, InternetMessageID: m.InternetMessageID, Subject: m.Subject,
		From: recipientJSON{Name: m.From.Name, Address: m.From.Address}, To: recipients(m.To), Cc: recipients(m.Cc), Bcc: recipients(m.Bcc),
		ReceivedAt: timePtr(m.Received), SentAt: timePtr(m.Sent), IsRead: m.IsRead, IsDraft: m.IsDraft, Categories: m.Categories,
		Importance: m.Importance, HasAttachments: m.HasAttachments, BodyPreview: m.BodyPreview, Attachments: []attachmentJSON{},
	}
	if out.Categories == nil {
		out.Categories = []string{}
	}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, attachmentJSON{ID: a.ID, Name: a.Name, ContentType: a.ContentType, Size: a.Size, IsInline: a.IsInline})
	}
	return out
}

// graphID is what a Graph ID may look like in a path (base64url-ish).
func graphID(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=+/.", r)) {
			return false
		}
	}
	return true
}

// mailScope is the mailbox a mail route reads: a delegated connection's
// own (routes without a mailbox), or the mailbox the path names.
type mailScope struct {
	row store.Connection
	// key is the mailbox's key in the store; userID is whom Graph is asked
	// about for content that is not stored.
	key, userID, state string
	settings           appSettings
}

// scope loads the mailbox a mail route reads, answering the problem when
// the caller may not read it.
func (s *server) scope(c *gin.Context) (mailScope, bool) {
	if c.Param("mbx") == "" {
		row, ok := s.connection(c, accessRead)
		return mailScope{row: row, key: row.ID, userID: row.UserID, state: row.State, settings: settingsOf(row)}, ok
	}
	row, m, ok := s.mailbox(c, accessRead)
	return mailScope{row: row, key: m.ID, userID: m.UserID, state: m.State, settings: mailboxSettings(m)}, ok
}

func (s *server) listFolders(c *gin.Context) {
	sc, ok := s.scope(c)
	if !ok {
		return
	}
	folders, err := s.d.Store.ListFolders(c, sc.key)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	type folderJSON struct {
		ID          string `json:"id"`
		ParentID    string `json:"parent_id,omitempty"`
		Name        string `json:"name"`
		WellKnown   string `json:"well_known,omitempty"`
		Phase       string `json:"phase"`
		Synced      int64  `json:"synced"`
		WindowStart string `json:"window_start"`
	}
	out := struct {
		Data []folderJSON `json:"data"`
	}{Data: []folderJSON{}}
	for _, f := range folders {
		out.Data = append(out.Data, folderJSON{ID: f.ID, ParentID: f.ParentID, Name: f.DisplayName, WellKnown: f.WellKnown, Phase: f.Phase,
			Synced: f.Synced, WindowStart: f.WindowStart.UTC().Format(time.RFC3339)})
	}
	c.PureJSON(http.StatusOK, out)
}

// messageCursor encodes the position after a message (received time, ID).
func messageCursor(m store.Message) string {
	return base64.RawURLEncoding.EncodeToString([]byte(m.Received.UTC().Format(time.RFC3339Nano) + "|" + m.ID))
}

func parseMessageCursor(s string) (time.Time, string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, "", false
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	t, err := time.Parse(time.RFC3339Nano, ts)
	if !ok || err != nil || !graphID(id) {
		return time.Time{}, "", false
	}
	if t.IsZero() {
		t = time.Unix(0, 0).UTC() // received_at missing sorts as the epoch
	}
	return t, id, true
}

func (s *server) listMessages(c *gin.Context) {
	sc, ok := s.scope(c)
	if !ok {
		return
	}
	limit, ok := limitParam(c, 50, 200)
	if !ok {
		return
	}
	q := store.MessageQuery{FolderID: c.Query("folder"), From: c.Query("from"), To: c.Query("to"), Limit: limit + 1}
	if q.FolderID != "" && !graphID(q.FolderID) {
		problem(c, http.StatusBadRequest, "invalid_folder", "folder must be a folder ID from GET .../folders.")
		return
	}
	for name, v := range map[string]string{"from": q.From, "to": q.To} {
		if len(v) > 320 || (v != "" && !strings.Contains(v, "@")) {
			problem(c, http.StatusBadRequest, "invalid_address", name+" must be an e-mail address.")
			return
		}
	}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			problem(c, http.StatusBadRequest, "invalid_since", "since must be an RFC 3339 time, such as 2026-11-01T00:00:00Z.")
			return
		}
		q.Since = t
	}
	switch c.Query("unread") {
	case "", "false":
	case "true":
		q.Unread = true
	default:
		problem(c, http.StatusBadRequest, "invalid_unread", "unread must be true or false.")
		return
	}
	if v := c.Query("cursor"); v != "" {
		t, id, ok := parseMessageCursor(v)
		if !ok {
			problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out.")
			return
		}
		if !s.messageCursorInRange(c, sc.key, t) {
			return
		}
		q.AfterReceived, q.AfterID = t, id
	}
	msgs, err := s.d.Store.ListMessages(c, sc.key, q)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	page := struct {
		Data       []messageJSON `json:"data"`
		NextCursor string        `json:"next_cursor,omitempty"`
	}{Data: []messageJSON{}}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		page.NextCursor = messageCursor(msgs[limit-1])
	}
	for _, m := range msgs {
		page.Data = append(page.Data, messageView(m))
	}
	c.PureJSON(http.StatusOK, page)
}

// messageCursorInRange checks a message list cursor against the
// connection's newest message: the API gives out positions of stored
// messages only, so a cursor newer than the newest (from the future, or
// from another connection) was never given out, and would silently answer
// the first page. It answers the problem when the cursor is refused.
func (s *server) messageCursorInRange(c *gin.Context, connectionID string, received time.Time) bool {
	newest, err := s.d.Store.ListMessages(c, connectionID, store.MessageQuery{Limit: 1})
	if err != nil {
		s.unavailable(c, err)
		return false
	}
	if !notAfterNewest(newest, received) {
		problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out for this connection: it lies beyond the connection's newest message.")
		return false
	}
	return true
}

// notAfterNewest says whether a cursor's received time is no later than the
// newest message's (given as the first of newest; none: no cursor fits).
// Times only are compared: IDs sort by the database's collation.
func notAfterNewest(newest []store.Message, received time.Time) bool {
	if len(newest) == 0 {
		return false
	}
	top := newest[0].Received
	if top.IsZero() {
		top = time.Unix(0, 0).UTC() // received_at missing sorts as the epoch
	}
	return !received.After(top)
}

// message loads the message named in the path for a visible mailbox.
func (s *server) message(c *gin.Context) (mailScope, store.Message, bool) {
	sc, ok := s.scope(c)
	if !ok {
		return sc, store.Message{}, false
	}
	mid := c.Param("mid")
	if !graphID(mid) {
		problem(c, http.StatusNotFound, "message_not_found", "This mailbox has no message with this ID.")
		return sc, store.Message{}, false
	}
	m, err := s.d.Store.GetMessage(c, sc.key, mid)
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "message_not_found", "This mailbox has no message with this ID.")
		return sc, m, false
	}
	if err != nil {
		s.unavailable(c, err)
		return sc, m, false
	}
	return sc, m, true
}

// onDemand says whether Graph may be asked for this connection now.
func (s *server) onDemand(c *gin.Context, sc mailScope) bool {
	if s.d.Mail == nil || sc.userID == "" {
		problem(c, http.StatusConflict, "not_available", "This content is not stored and cannot be fetched for this connection.")
		return false
	}
	if sc.state == workflows.StateReauthRequired || sc.row.State == workflows.StateReauthRequired {
		reauthProblem(c, sc.state, "")
		return false
	}
	if sc.state != workflows.StateActive {
		problem(c, http.StatusConflict, "connection_not_active", "The mailbox is "+sc.state+"; content that is not stored can only be fetched from an active mailbox.")
		return false
	}
	return true
}

// reauthProblem answers that content cannot be fetched until the user signs
// in again, with the connection's state as the registry knows it and why
// Microsoft refused (when known).
func reauthProblem(c *gin.Context, state string, reason identity.Reason) {
	why := ""
	if reason != "" && reason != identity.ReasonUnknown {
		why = " (Microsoft refused its sign-in: " + string(reason) + ")"
	}
	problem(c, http.StatusConflict, "reauth_required", "The connection needs the user to sign in again before content that is not stored can be fetched"+
		why+"; its last known state is "+state+".")
}

// fetchError answers an on-demand read that failed: the item is gone at
// the source (404), the connection needs a new sign-in (409), or Graph or
// the identity platform failed otherwise (502).
func (s *server) fetchError(c *gin.Context, sc mailScope, err error) {
	if errors.Is(err, mailreader.ErrGone) {
		problem(c, http.StatusNotFound, "gone_at_source", "The mailbox no longer has this item.")
		return
	}
	var reauth *mailreader.ReauthError
	if errors.As(err, &reauth) {
		s.d.Logger.Info("on-demand fetch needs a new sign-in", "connection", sc.row.ID, "reason", reauth.Reason)
		reauthProblem(c, sc.state, reauth.Reason)
		return
	}
	s.d.Logger.Warn("on-demand fetch failed", "path", c.FullPath(), "err", err)
	problem(c, http.StatusBadGateway, "upstream_failed", "Microsoft Graph did not return the content; retry shortly.")
}

func (s *server) getMessage(c *gin.Context) {
	sc, m, ok := s.message(c)
	if !ok {
		return
	}
	out := messageView(m)
	switch {
	case m.Body != nil:
		out.Body = &bodyJSON{ContentType: m.BodyContentType, Content: *m.Body, Source: "store"}
	case sc.settings.Storage.Bodies == BodiesOnDemand && c.Query("body") != "false":
		if !s.onDemand(c, sc) {
			return
		}
		ct, content, err := s.d.Mail.Body(c, sc.row.ID, sc.userID, m.ID)
		if err != nil {
			s.fetchError(c, sc, err)
			return
		}
		out.Body = &bodyJSON{ContentType: ct, Content: content, Source: "graph"}
	}
	c.PureJSON(http.StatusOK, out)
}

func (s *server) getAttachment(c *gin.Context) {
	sc, m, ok := s.message(c)
	if !ok {
		return
	}
	aid := c.Param("aid")
	var att *store.Attachment
	for i := range m.Attachments {
		if m.Attachments[i].ID == aid {
			att = &m.Attachments[i]
		}
	}
	if att == nil {
		problem(c, http.StatusNotFound, "attachment_not_found", "This message has no attachment with this ID.")
		return
	}
	if b := sc.settings.Storage.Bodies; b == BodiesNone || b == BodiesMetadata {
		problem(c, http.StatusConflict, "content_not_kept", "This mailbox's storage policy ("+b+") keeps no content: attachments are not streamed.")
		return
	}
	if !s.onDemand(c, sc) {
		return
	}
	resp, err := s.d.Mail.Attachment(c, sc.row.ID, sc.userID, m.ID, att.ID)
	if err != nil {
		s.fetchError(c, sc, err)
		return
	}
	defer resp.Body.Close()
	ct := att.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Header("Content-Type", ct)
	c.Header("Content-Disposition", `attachment; filename="`+strings.NewReplacer(`"`, "", "\r", "", "\n", "").Replace(att.Name)+`"`)
	c.Header("X-Content-Type-Options", "nosniff")
	if resp.ContentLength >= 0 {
		c.Header("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	c.Status(http.StatusOK)
	if _, err := io.Copy(c.Writer, resp.Body); err != nil {
		s.d.Logger.Warn("attachment stream cut", "err", err)
	}
}
