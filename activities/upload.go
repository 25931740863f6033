package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/store"
)

// Upload sizes (docs/graph.md#upload-sessions): a file of 3 MB or more
// goes through an upload session, in ranges of at most 4 MB.
const (
	uploadThreshold = 3 << 20
	uploadRange     = 4 << 20
)

// upload attaches a large file to a draft through an upload session: the
// attachment appears on the draft only when its last range is in, so a
// retry after a failure (counting the draft's attachments first) starts a
// new session and never leaves half a file.
func (m *mailbox) upload(ctx context.Context, draftID string, a store.SendAttachment) error {
	item := models.NewAttachmentItem()
	typ := models.FILE_ATTACHMENTTYPE
	item.SetAttachmentType(&typ)
	name, ct, size := a.Name, a.ContentType, a.FileSize()
	item.SetName(&name)
	item.SetContentType(&ct)
	item.SetSize(&size)
	inline := a.IsInline
	item.SetIsInline(&inline)
	if a.ContentID != "" {
		cid := a.ContentID
		item.SetContentId(&cid)
	}
	body := users.NewItemMessagesItemAttachmentsCreateUploadSessionPostRequestBody()
	body.SetAttachmentItem(item)
	session, err := m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(draftID).Attachments().CreateUploadSession().Post(ctx, body, nil)
	if err != nil {
		return classifySend("open an upload session for "+a.Name, err)
	}
	uploadURL := deref(session.GetUploadUrl())
	if uploadURL == "" {
		return fmt.Errorf("activities: upload session for %s has no URL", a.Name)
	}
	open := func(from int64) io.Reader { return bytes.NewReader(a.Content[from:]) }
	if a.UploadID != "" {
		if m.files == nil {
			return fmt.Errorf("activities: upload %s: no store to read upload %s from", a.Name, a.UploadID)
		}
		open = func(from int64) io.Reader { return m.files(ctx, a.UploadID, from) }
	}
	if err := m.sendFile(ctx, uploadURL, a.Name, size, open); err != nil {
		return fmt.Errorf("activities: upload %s: %w", a.Name, err)
	}
	return nil
}

// UploadProgress is what PrepareSend's heartbeat says of a file on its way
// to Graph (never the session's URL, which is a credential).
type UploadProgress struct {
	File string `json:"file"`
	Sent int64  `json:"sent"`
	Size int64  `json:"size"`
}

// Range retries (docs/graph.md#upload-sessions): a range Graph throttled
// (the mailbox's 150 MB per 5 minutes, 429 with Retry-After), answered
// with a 5xx or whose answer was lost is sent again from where the session
// says it stands, up to rangeTries times in a row; the file goes on from
// there instead of starting over, which a file that takes longer than
// Graph's upload window would never finish.
const (
	rangeTries    = 8
	rangeMaxPause = time.Minute
)

// rangePause is the first pause before a range is sent again without a
// Retry-After; it doubles with each try (tests shorten it).
var rangePause = time.Second

// sendFile PUTs size bytes to an upload session, in ranges of 4 MB, one
// range in memory at a time, read from open at the offset the session
// expects. Each range done is a heartbeat with the progress.
func (m *mailbox) sendFile(ctx context.Context, uploadURL, name string, size int64, open func(from int64) io.Reader) error {
	src := open(0)
	buf := make([]byte, min(uploadRange, size))
	for pos := int64(0); pos < size; {
		buf = buf[:min(int64(uploadRange), size-pos)]
		if _, err := io.ReadFull(src, buf); err != nil {
			return fmt.Errorf("read bytes %d-: %w", pos, err)
		}
		next, err := m.sendRange(ctx, uploadURL, buf, pos, size)
		if err != nil {
			return err
		}
		if next != pos+int64(len(buf)) {
			src = open(next) // the session stands elsewhere: read from there
		}
		pos = next
		if m.progress != nil {
			m.progress(UploadProgress{File: name, Sent: pos, Size: size})
		}
	}
	return nil
}

// sendRange sends one range and answers the offset the session expects
// next. A throttled, failed or lost range is retried after Retry-After
// (or a backoff), from the offset the session gives when asked
// (GET on the upload URL): the range may have landed before its answer
// was lost. A refusal of the range (another 4xx) is final.
func (m *mailbox) sendRange(ctx context.Context, uploadURL string, chunk []byte, start, total int64) (int64, error) {
	end := start + int64(len(chunk))
	for try := 1; ; try++ {
		status, wait, err := m.putRange(ctx, uploadURL, chunk, start, total)
		if err == nil {
			return end, nil
		}
		if ctx.Err() != nil || try >= rangeTries || !rangeRetryable(status) {
			return 0, err
		}
		if wait <= 0 {
			wait = min(rangePause<<(try-1), rangeMaxPause)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(min(wait, rangeMaxPause)):
		}
		if status == 0 || status == http.StatusRequestedRangeNotSatisfiable || status >= 500 {
			// Whether the range landed is unknown: the session says.
			if next, serr := m.uploadState(ctx, uploadURL); serr == nil && next != start {
				return next, nil
			}
		}
	}
}

// rangeRetryable: a dropped connection (0), a timeout, throttling, a 5xx,
// or a range the session no longer expects (an earlier try landed).
func rangeRetryable(status int) bool {
	return status == 0 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests ||
		status == http.StatusRequestedRangeNotSatisfiable || status >= 500
}

// uploadState asks an upload session where it stands: the offset of the
// next byte it expects (nextExpectedRanges, "{start}" or "{start}-").
func (m *mailbox) uploadState(ctx context.Context, uploadURL string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uploadURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := m.client().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the upload session's state answered %d", resp.StatusCode)
	}
	// encoding/json matches keys without regard to case: this also
	// reads the "NextExpectedRanges" some of Graph's answers spell.
	var st struct {
		Next []string `json:"nextExpectedRanges"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&st); err != nil {
		return 0, fmt.Errorf("the upload session's state: %w", err)
	}
	ranges := st.Next
	if len(ranges) == 0 {
		return 0, errors.New("the upload session's state names no range")
	}
	first, _, _ := strings.Cut(ranges[0], "-")
	next, err := strconv.ParseInt(first, 10, 64)
	if err != nil || next < 0 {
		return 0, fmt.Errorf("the upload session's state: range %q", ranges[0])
	}
	return next, nil
}

func (m *mailbox) client() *http.Client {
	if m.hc != nil {
		return m.hc
	}
	return http.DefaultClient
}

// readWhole fills in the bytes of an uploaded file small enough to go in
// one request; inline files have theirs.
func (m *mailbox) readWhole(ctx context.Context, a *store.SendAttachment) error {
	if a.UploadID == "" || a.Content != nil {
		return nil
	}
	if m.files == nil {
		return fmt.Errorf("activities: attachment %s: no store to read upload %s from", a.Name, a.UploadID)
	}
	buf := make([]byte, a.Size)
	if _, err := io.ReadFull(m.files(ctx, a.UploadID, 0), buf); err != nil {
		return fmt.Errorf("activities: attachment %s: read upload %s: %w", a.Name, a.UploadID, err)
	}
	a.Content = buf
	return nil
}

// putRange sends one range to the pre-authenticated upload URL, without
// an Authorization header (docs/graph.md#upload-sessions). It answers the
// status (0 when no answer came) and the Retry-After Graph asked for.
func (m *mailbox) putRange(ctx context.Context, uploadURL string, chunk []byte, start, total int64) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(chunk))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+int64(len(chunk))-1, total))
	resp, err := m.client().Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("range %d-%d: %w", start, start+int64(len(chunk))-1, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		var wait time.Duration
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			wait = time.Duration(secs) * time.Second
		}
		return resp.StatusCode, wait, fmt.Errorf("range %d-%d answered %d: %s", start, start+int64(len(chunk))-1, resp.StatusCode, b)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, 0, nil
}
