package api

import (
	"cmp"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Limits of uploads (docs/sending.md#large-attachments), modelled on
// Graph's upload sessions for attachments.
const (
	// MaxUploadSize is the largest file an upload takes: Graph attaches
	// files of up to 150 MB to a message (when the mailbox's maximum
	// message size allows it).
	MaxUploadSize = 150 << 20
	// MaxMessageWithUploads bounds a message whose files were uploaded:
	// Exchange Online's largest maximum message size.
	MaxMessageWithUploads = 150 << 20
	// MaxUploadRange is the largest range one PUT carries.
	MaxUploadRange = 8 << 20
	// UploadLifetime is how long an upload may be finished and used.
	UploadLifetime = 24 * time.Hour
	// MaxOpenUploads and MaxOpenUploadBytes bound what one connection holds
	// in uploads not yet taken by a send, so that an app (or a leaked key)
	// cannot fill the database: 20 files, 1 GiB together (six of the
	// largest).
	MaxOpenUploads     = 20
	MaxOpenUploadBytes = 1 << 30
)

var uploadIDPattern = regexp.MustCompile(`^upl_[a-z2-7]{26}$`)

// newUploadID is a random upload ID.
func newUploadID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "upl_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

type uploadRequest struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// uploadJSON is an upload as the API shows it.
type uploadJSON struct {
	ID           string `json:"id"`
	ConnectionID string `json:"connection_id"`
	MailboxID    string `json:"mailbox_id,omitempty"`
	Name         string `json:"name"`
	ContentType  string `json:"content_type"`
	Size         int64  `json:"size"`
	Received     int64  `json:"received"`
	// State is uploading, or complete once every byte is in.
	State              string     `json:"state"`
	UploadURL          string     `json:"upload_url"`
	NextExpectedRanges []string   `json:"next_expected_ranges"`
	SendID             string     `json:"send_id,omitempty"`
	ExpiresAt          time.Time  `json:"expires_at"`
	CreatedAt          time.Time  `json:"created_at"`
	CompletedAt        *time.Time `json:"completed_at,omitempty"`
}

func toUploadJSON(u store.Upload) uploadJSON {
	out := uploadJSON{ID: u.ID, ConnectionID: u.ConnectionID, MailboxID: u.MailboxID, Name: u.Name, ContentType: u.ContentType,
		Size: u.Size, Received: u.Received, State: "uploading", UploadURL: "/v1/connections/" + u.ConnectionID + "/uploads/" + u.ID,
		NextExpectedRanges: []string{}, SendID: u.SendID, ExpiresAt: u.ExpiresAt, CreatedAt: u.CreatedAt, CompletedAt: u.CompletedAt}
	if u.Complete() {
		out.State = "complete"
	} else {
		out.NextExpectedRanges = []string{fmt.Sprintf("%d-", u.Received)}
	}
	return out
}

// createUpload opens an upload for a file the connection (or an attached
// mailbox) will send: the same checks as a send's, then the file's name,
// type and size.
func (s *server) createUpload(c *gin.Context) {
	o, ok := s.sendingFrom(c)
	if !ok {
		return
	}
	var req uploadRequest
	if !bind(c, &req) {
		return
	}
	switch {
	case req.Name == "" || len(req.Name) > 255 || strings.ContainsAny(req.Name, "/\\\x00"):
		problem(c, http.StatusUnprocessableEntity, "invalid_upload", "name must be a file name of 1 to 255 bytes.")
		return
	case len(req.ContentType) > 255 || strings.ContainsAny(req.ContentType, "\r\n"):
		problem(c, http.StatusUnprocessableEntity, "invalid_upload", "content_type must be a media type of at most 255 bytes.")
		return
	case req.Size <= 0:
		problem(c, http.StatusUnprocessableEntity, "invalid_upload", "size must be the file's size in bytes, at least 1.")
		return
	case req.Size > MaxUploadSize:
		problem(c, http.StatusRequestEntityTooLarge, "upload_too_large", fmt.Sprintf("The file is %d bytes; Graph attaches files of at most 150 MB (%d bytes).", req.Size, MaxUploadSize))
		return
	}
	if o.method == workflows.SendBySendMail && req.Size > MaxInlineAttachment {
		problem(c, http.StatusUnprocessableEntity, "message_too_large", "A send-only connection sends a message in one request, whose attachments may total 3 MiB; grant Mail.ReadWrite for larger ones.")
		return
	}
	if req.ContentType == "" {
		req.ContentType = "application/octet-stream"
	}
	// Expired uploads go as new ones come (the retention sweeper takes
	// the rest).
	if _, err := s.d.Store.PurgeExpiredUploads(c, time.Now(), 10); err != nil {
		s.d.Logger.Warn("expired uploads could not be purged", "err", err)
	}
	u, err := s.d.Store.CreateUpload(c, store.Upload{ID: newUploadID(), ConnectionID: o.row.ID, MailboxID: o.mailboxID,
		Name: req.Name, ContentType: req.ContentType, Size: req.Size, ExpiresAt: time.Now().Add(cmp.Or(s.d.UploadLifetime, UploadLifetime))},
		store.UploadQuota{Count: MaxOpenUploads, Bytes: MaxOpenUploadBytes})
	if errors.Is(err, store.ErrUploadQuota) {
		problem(c, http.StatusConflict, "upload_quota_exceeded", fmt.Sprintf("This connection already holds %d uploads not yet sent, or %d bytes in them, the most it may (%d bytes more asked): send them, DELETE those no longer needed, or let them expire.", MaxOpenUploads, MaxOpenUploadBytes, req.Size))
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := toUploadJSON(u)
	c.Header("Location", out.UploadURL)
	c.PureJSON(http.StatusCreated, out)
}

// upload loads the upload the path names, for the caller who may send
// from its connection.
func (s *server) upload(c *gin.Context, change bool) (store.Upload, bool) {
	row, ok := s.connection(c, accessRead)
	if !ok {
		return store.Upload{}, false
	}
	if change && !mayChange(callerOf(c), row) {
		problem(c, http.StatusForbidden, "not_owner", "This connection is shared with you for reading; only its owner or an admin key may upload files to send from it.")
		return store.Upload{}, false
	}
	id := c.Param("uid")
	if !uploadIDPattern.MatchString(id) {
		problem(c, http.StatusNotFound, "upload_not_found", "No upload with this ID on this connection (an upload expires 24 hours after it was created).")
		return store.Upload{}, false
	}
	u, err := s.d.Store.GetUpload(c, row.ID, id)
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "upload_not_found", "No upload with this ID on this connection (an upload expires 24 hours after it was created).")
		return store.Upload{}, false
	}
	if err != nil {
		s.unavailable(c, err)
		return store.Upload{}, false
	}
	return u, true
}

func (s *server) getUpload(c *gin.Context) {
	if u, ok := s.upload(c, false); ok {
		c.PureJSON(http.StatusOK, toUploadJSON(u))
	}
}

func (s *server) deleteUpload(c *gin.Context) {
	u, ok := s.upload(c, true)
	if !ok {
		return
	}
	err := s.d.Store.DeleteUpload(c, u.ConnectionID, u.ID)
	switch {
	case errors.Is(err, store.ErrUploadInUse):
		problem(c, http.StatusConflict, "upload_in_use", "Send "+u.SendID+" holds this upload until it is sent, fails or is canceled; it expires after that.")
	case errors.Is(err, store.ErrNotFound):
		problem(c, http.StatusNotFound, "upload_not_found", "No upload with this ID on this connection (an upload expires 24 hours after it was created).")
	case err != nil:
		s.unavailable(c, err)
	default:
		c.Status(http.StatusNoContent)
	}
}

var uploadContentRange = regexp.MustCompile(`^bytes (\d{1,12})-(\d{1,12})/(\d{1,12})$`)

// putUploadRange takes one range of the file, as Graph's upload URL does:
// Content-Range "bytes first-last/size", the bytes in the body. Ranges
// come in order; the same range again is answered as a success.
func (s *server) putUploadRange(c *gin.Context) {
	u, ok := s.upload(c, true)
	if !ok {
		return
	}
	rangeText := fmt.Sprintf("Content-Range must be \"bytes first-last/%d\", a range of at most %d bytes (8 MiB).", u.Size, MaxUploadRange)
	m := uploadContentRange.FindStringSubmatch(strings.TrimSpace(c.GetHeader("Content-Range")))
	if m == nil {
		problem(c, http.StatusBadRequest, "invalid_content_range", rangeText)
		return
	}
	first, _ := strconv.ParseInt(m[1], 10, 64)
	last, _ := strconv.ParseInt(m[2], 10, 64)
	total, _ := strconv.ParseInt(m[3], 10, 64)
	switch {
	case total != u.Size:
		problem(c, http.StatusBadRequest, "invalid_content_range", fmt.Sprintf("The Content-Range's total %d is not the upload's size %d.", total, u.Size))
		return
	case last >= first && last-first+1 > MaxUploadRange:
		problem(c, http.StatusRequestEntityTooLarge, "range_too_large", fmt.Sprintf("A range is at most %d bytes (8 MiB); this one is %d.", MaxUploadRange, last-first+1))
		return
	case last < first || last >= total:
		problem(c, http.StatusBadRequest, "invalid_content_range", rangeText)
		return
	}
	n := last - first + 1
	if c.Request.ContentLength >= 0 && c.Request.ContentLength != n {
		problem(c, http.StatusBadRequest, "range_length_mismatch", fmt.Sprintf("The body is %d bytes; the Content-Range names %d.", c.Request.ContentLength, n))
		return
	}
	data := make([]byte, n)
	got, err := io.ReadFull(c.Request.Body, data)
	if err != nil || got != len(data) {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			problem(c, http.StatusBadRequest, "range_length_mismatch", fmt.Sprintf("The body ended after %d bytes; the Content-Range names %d. Send the range again.", got, n))
			return
		}
		problem(c, http.StatusBadRequest, "range_incomplete", "The range's body could not be read to its end; send the range again.")
		return
	}
	if extra, _ := c.Request.Body.Read(make([]byte, 1)); extra > 0 {
		problem(c, http.StatusBadRequest, "range_length_mismatch", fmt.Sprintf("The body is longer than the %d bytes the Content-Range names.", n))
		return
	}
	out, err := s.d.Store.PutUploadRange(c, u.ConnectionID, u.ID, first, data)
	var notNext *store.RangeNotExpectedError
	switch {
	case errors.As(err, &notNext):
		c.Header("Content-Range", fmt.Sprintf("bytes */%d", u.Size))
		detail := fmt.Sprintf("Ranges come in order: the next one starts at byte %d (next_expected_ranges in GET %s).", notNext.Next, toUploadJSON(u).UploadURL)
		if notNext.Next == u.Size {
			detail = "The upload is complete; it takes no more ranges."
		}
		problem(c, http.StatusRequestedRangeNotSatisfiable, "range_not_expected", detail)
		return
	case errors.Is(err, store.ErrRangeOverlaps):
		problem(c, http.StatusConflict, "range_overlaps", fmt.Sprintf("Bytes %d-%d overlap bytes already uploaded, and are not a range sent before byte for byte; GET the upload for the next expected range.", first, last))
		return
	case errors.Is(err, store.ErrNotFound):
		problem(c, http.StatusNotFound, "upload_not_found", "No upload with this ID on this connection (an upload expires 24 hours after it was created).")
		return
	case err != nil:
		s.unavailable(c, err)
		return
	}
	status := http.StatusOK
	if !u.Complete() && out.Complete() {
		status = http.StatusCreated // this range finished the file
	}
	c.PureJSON(status, toUploadJSON(out))
}

// uploadedFile resolves an attachment that names an upload: the upload
// must be this connection's (and mailbox's), complete, and not held by
// another send than sendID.
func (s *server) uploadedFile(c *gin.Context, o origin, sendID string, i int, a store.SendAttachment) (store.SendAttachment, *sendInvalid, error) {
	u, err := s.d.Store.GetUpload(c, o.row.ID, a.UploadID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.MailboxID != o.mailboxID) {
		return a, &sendInvalid{"upload_not_found", fmt.Sprintf("attachments[%d]: no upload %s on this connection and mailbox (an upload expires 24 hours after it was created).", i, a.UploadID)}, nil
	}
	if err != nil {
		return a, nil, err
	}
	switch {
	case !u.Complete():
		return a, &sendInvalid{"upload_incomplete", fmt.Sprintf("attachments[%d]: upload %s has %d of its %d bytes; finish it before sending it.", i, u.ID, u.Received, u.Size)}, nil
	case u.SendID != "" && u.SendID != sendID:
		return a, &sendInvalid{"upload_in_use", fmt.Sprintf("attachments[%d]: upload %s is attached to send %s; an upload goes with one send.", i, u.ID, u.SendID)}, nil
	}
	if a.Name == "" {
		a.Name = u.Name
	}
	if a.ContentType == "" {
		a.ContentType = u.ContentType
	}
	a.Size = u.Size
	return a, nil, nil
}

// withUploads resolves a send's uploaded files and checks the message's
// size with them; it answers the problem and says false when it may not
// go.
func (s *server) withUploads(c *gin.Context, o origin, sendID string, m store.OutgoingMessage, atts []store.SendAttachment) bool {
	size := int64(len(m.Subject) + len(m.Body.Content))
	uploaded := false
	for i, a := range atts {
		if a.UploadID != "" {
			got, bad, err := s.uploadedFile(c, o, sendID, i, a)
			if err != nil {
				s.unavailable(c, err)
				return false
			}
			if bad != nil {
				problem(c, http.StatusUnprocessableEntity, bad.code, capitalize(bad.detail))
				return false
			}
			atts[i], uploaded = got, true
		}
		size += atts[i].FileSize()
	}
	if uploaded && size > MaxMessageWithUploads {
		problem(c, http.StatusUnprocessableEntity, "message_too_large", fmt.Sprintf("The message is %d bytes with its attachments; Exchange Online sends at most 150 MB, and only from a mailbox whose maximum message size allows it (35 MB by default).", size))
		return false
	}
	return true
}

// uploadRefusedProblem answers an upload the store refused to attach to
// a send (one changed between the check and the write).
func uploadRefusedProblem(c *gin.Context, err error) bool {
	switch {
	case errors.Is(err, store.ErrUploadIncomplete):
		problem(c, http.StatusUnprocessableEntity, "upload_incomplete", "An attachment's upload is not complete; finish it before sending it.")
	case errors.Is(err, store.ErrUploadInUse):
		problem(c, http.StatusUnprocessableEntity, "upload_in_use", "An attachment's upload is attached to another send; an upload goes with one send.")
	case errors.Is(err, store.ErrNotFound):
		problem(c, http.StatusUnprocessableEntity, "upload_not_found", "An attachment's upload is gone (an upload expires 24 hours after it was created).")
	default:
		return false
	}
	return true
}
