package graphsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Upload session limits (docs/graph.md#upload-sessions).
const (
	minUploadSize   = 3 << 20 // smaller files go in one POST .../attachments
	maxUploadChunk  = 4 << 20 // each PUT
	uploadsPrefix   = "/api/v2.0/"
	defaultLifetime = 2 * time.Hour
)

// uploadSession is an attachment being uploaded in ranges to a message.
type uploadSession struct {
	id, token   string
	userID      string
	tenantID    string
	messageID   string // immutable
	name, ctype string
	contentID   string
	inline      bool
	size        int64
	data        []byte
	expires     time.Time
}

// createUploadSession serves POST .../messages/{id}/attachments/
// createUploadSession: a session for a file of 3 MB up to the mailbox's
// message size limit, answered 201 with a pre-authenticated uploadUrl on
// another host (docs/graph.md#upload-sessions).
func (s *Sim) createUploadSession(g *graphRequest, id string) {
	raw, err := readBody(g)
	if err != nil {
		return
	}
	var body struct {
		AttachmentItem *struct {
			AttachmentType string `json:"attachmentType"`
			Name           string `json:"name"`
			Size           int64  `json:"size"`
			ContentType    string `json:"contentType"`
			IsInline       bool   `json:"isInline"`
			ContentID      string `json:"contentId"`
		} `json:"AttachmentItem"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || body.AttachmentItem == nil {
		errBadRequest(g.w, g.r, "The AttachmentItem parameter is required.")
		return
	}
	it := body.AttachmentItem
	switch {
	case !strings.EqualFold(it.AttachmentType, "file"):
		errBadRequestCode(g, "ErrorInvalidParameter", "Only file attachments can be uploaded in a session.")
		return
	case strings.TrimSpace(it.Name) == "":
		errBadRequestCode(g, "ErrorInvalidParameter", "The attachment must have a name.")
		return
	case it.Size < minUploadSize:
		errBadRequestCode(g, "ErrorAttachmentSizeShouldNotBeLessThanMinimumSize", "Attachment size should not be less than the minimum size of 3 MB.")
		return
	}
	s.writeOp(g, id, func(mb *mailbox, m *Message) {
		total := it.Size
		for _, a := range m.Attachments {
			total += int64(len(a.Content))
		}
		if total > s.maxMessageSize(g.target) {
			// Graph's answer to a file over the mailbox's MaxSendSize, as
			// app developers report it (its status is not documented).
			errBadRequestCode(g, "ErrorMessageSizeExceeded", "The message exceeds the maximum supported size.")
			return
		}
		u := &uploadSession{
			id: exchangeID("AAMkAGIUpl", m.ImmutableID, randomToken(8)), token: randomToken(32),
			userID: g.target.ID, tenantID: g.target.TenantID, messageID: m.ImmutableID,
			name: it.Name, ctype: it.ContentType, contentID: it.ContentID, inline: it.IsInline, size: it.Size,
			expires: s.clock.Now().Add(s.opts.Sending.UploadSessionLifetime),
		}
		s.uploads[u.id] = u
		s.remember(u.token)
		writeJSON(g.w, http.StatusCreated, map[string]any{
			"@odata.context":     s.URL() + "/v1.0/$metadata#microsoft.graph.uploadSession",
			"uploadUrl":          s.uploadURL(u, "AttachmentSessions", u.id) + "?authtoken=" + url.QueryEscape(u.token),
			"expirationDateTime": graphTime(u.expires),
			"nextExpectedRanges": []string{"0-"},
		})
	})
}

// uploadBase is where upload URLs point: the simulator under another host
// name, as Microsoft's point at outlook.office.com rather than Graph, so
// that a client which sends its token only to Graph's host sends none.
func (s *Sim) uploadBase() string {
	u, err := url.Parse(s.URL())
	if err != nil {
		return s.URL()
	}
	host, port := u.Hostname(), u.Port()
	switch host {
	case "127.0.0.1":
		host = "localhost"
	case "localhost":
		host = "127.0.0.1"
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	}
	u.Host = host
	return u.String()
}

// uploadURL is an Outlook REST path of the session's message.
func (s *Sim) uploadURL(u *uploadSession, coll, id string) string {
	return s.uploadBase() + uploadsPrefix + "Users('" + u.userID + "@" + u.tenantID + "')/Messages('" + u.messageID + "')/" + coll + "('" + id + "')"
}

var sessionInPath = regexp.MustCompile(`/AttachmentSessions\('([^']+)'\)$`)

// serveUpload serves the upload URL: PUT a range, GET the state, DELETE
// to cancel. The URL carries its own token; an Authorization header is
// refused (docs/graph.md#upload-sessions).
func (s *Sim) serveUpload(w http.ResponseWriter, r *http.Request) {
	g := &graphRequest{w: w, r: r, class: "attachments"}
	path, err := url.PathUnescape(r.URL.EscapedPath())
	m := sessionInPath.FindStringSubmatch(path)
	if err != nil || m == nil {
		errResourceNotFound(w, r)
		return
	}
	// Refused only where a client could tell the hosts apart: under a
	// single host name an SDK cannot help sending its token.
	if r.Header.Get("Authorization") != "" && s.uploadBase() != s.URL() {
		graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "The upload URL is pre-authenticated: do not send an Authorization header.")
		return
	}
	var chunk []byte
	if r.Method == http.MethodPut {
		// Read before taking the lock: a slow client holds up nobody else.
		if chunk, err = io.ReadAll(io.LimitReader(r.Body, maxUploadChunk+1)); err != nil {
			errBadRequest(w, r, "The request body could not be read.")
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.uploads[m[1]]
	if u == nil {
		errItemNotFound(w, r)
		return
	}
	if r.URL.Query().Get("authtoken") != u.token {
		graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "The upload URL's token is not valid.")
		return
	}
	if !s.clock.Now().Before(u.expires) {
		delete(s.uploads, u.id)
		errItemNotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		s.putRange(g, u, chunk)
	case http.MethodGet:
		s.writeUploadState(g, u, http.StatusOK)
	case http.MethodDelete:
		delete(s.uploads, u.id)
		w.WriteHeader(http.StatusNoContent)
	default:
		graphError(w, r, http.StatusMethodNotAllowed, "ErrorInvalidRequest", "The requested method is not supported by this resource.")
	}
}

var contentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+)$`)

// putRange takes the next range of the file: bytes in order, up to 4 MB a
// PUT; 200 with the next expected start, or 201 with the attachment's URL
// in Location once the file is whole. The caller holds s.mu.
func (s *Sim) putRange(g *graphRequest, u *uploadSession, chunk []byte) {
	w, r := g.w, g.r
	cr := contentRange.FindStringSubmatch(strings.TrimSpace(r.Header.Get("Content-Range")))
	if cr == nil {
		errBadRequestCode(g, "ErrorInvalidParameter", "The Content-Range header is missing or malformed.")
		return
	}
	start, _ := strconv.ParseInt(cr[1], 10, 64)
	end, _ := strconv.ParseInt(cr[2], 10, 64)
	total, _ := strconv.ParseInt(cr[3], 10, 64)
	switch {
	case total != u.size:
		errBadRequestCode(g, "ErrorInvalidParameter", fmt.Sprintf("The Content-Range total %d is not the attachment's size %d.", total, u.size))
		return
	case end < start || end >= total:
		errBadRequestCode(g, "ErrorInvalidParameter", "The Content-Range header is missing or malformed.")
		return
	case end-start+1 > maxUploadChunk:
		errRequestTooLarge(g)
		return
	case start != int64(len(u.data)):
		graphError(w, r, http.StatusRequestedRangeNotSatisfiable, "ErrorInvalidRange", fmt.Sprintf("The uploaded range is out of order; the next expected byte is %d.", len(u.data)))
		return
	}
	if int64(len(chunk)) != end-start+1 {
		errBadRequestCode(g, "ErrorInvalidParameter", "The body's length does not match the Content-Range header.")
		return
	}
	u.data = append(u.data, chunk...)
	if int64(len(u.data)) < u.size {
		s.writeUploadState(g, u, http.StatusOK)
		return
	}
	delete(s.uploads, u.id)
	owner := s.users[u.userID]
	var msg *Message
	if owner != nil && owner.mailbox != nil {
		msg = owner.mailbox.messages[u.messageID]
	}
	if msg == nil {
		errItemNotFound(w, r)
		return
	}
	a := s.newAttachment(msg, AttachmentSpec{Name: u.name, ContentType: u.ctype, Content: u.data, Inline: u.inline}, u.contentID)
	msg.Attachments = append(msg.Attachments, a)
	owner.mailbox.update(msg, s.clock.Now())
	w.Header().Set("Location", s.uploadURL(u, "Attachments", a.ID))
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// writeUploadState answers with the session's expiry and where the next
// range starts, in Outlook's own casing ("ExpirationDateTime").
func (s *Sim) writeUploadState(g *graphRequest, u *uploadSession, status int) {
	next := strconv.Itoa(len(u.data))
	if len(u.data) == 0 {
		next = "0-"
	}
	writeJSON(g.w, status, map[string]any{
		"@odata.context":     s.uploadBase() + uploadsPrefix + "$metadata#Users('" + u.userID + "%40" + u.tenantID + "')/Messages('" + u.messageID + "')/AttachmentSessions/$entity",
		"ExpirationDateTime": graphTime(u.expires),
		"nextExpectedRanges": []string{next},
	})
}

// maxMessageSize is the largest message the mailbox sends: its own limit
// (SetMaxMessageSize), else the simulator's (SendingOptions).
func (s *Sim) maxMessageSize(u *User) int64 {
	if u != nil && u.MaxMessageSize > 0 {
		return u.MaxMessageSize
	}
	return s.opts.Sending.MaxMessageSize
}

// SetMaxMessageSize sets a mailbox's maximum message size (Exchange's
// MaxSendSize, 35 MB by default, up to 150 MB); 0 gives it the
// simulator's default again.
func (s *Sim) SetMaxMessageSize(user string, size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.liveUser(user)
	if err != nil {
		return err
	}
	if size < 0 || size > 150<<20 {
		return fmt.Errorf("graphsim: a maximum message size is 0 to 150 MB, not %d", size)
	}
	u.MaxMessageSize = size
	return nil
}
