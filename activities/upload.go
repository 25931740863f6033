package activities

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

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
	src := io.Reader(bytes.NewReader(a.Content))
	if a.UploadID != "" {
		if m.files == nil {
			return fmt.Errorf("activities: upload %s: no store to read upload %s from", a.Name, a.UploadID)
		}
		src = m.files(ctx, a.UploadID, 0)
	}
	// One range in memory at a time, read from the store as it goes.
	buf := make([]byte, min(uploadRange, size))
	for start := int64(0); start < size; start += int64(len(buf)) {
		buf = buf[:min(int64(uploadRange), size-start)]
		if _, err := io.ReadFull(src, buf); err != nil {
			return fmt.Errorf("activities: upload %s: read bytes %d-: %w", a.Name, start, err)
		}
		if err := m.putRange(ctx, uploadURL, buf, start, size); err != nil {
			return fmt.Errorf("activities: upload %s: %w", a.Name, err)
		}
	}
	return nil
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
// an Authorization header (docs/graph.md#upload-sessions).
func (m *mailbox) putRange(ctx context.Context, uploadURL string, chunk []byte, start, total int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, uploadURL, bytes.NewReader(chunk))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+int64(len(chunk))-1, total))
	hc := m.hc
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("range %d-%d answered %d: %s", start, start+int64(len(chunk))-1, resp.StatusCode, b)
	}
	return nil
}
