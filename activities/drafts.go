package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// ErrDraftGone: the mailbox no longer holds the draft as a draft: the
// user deleted it, or sent it from Outlook.
var ErrDraftGone = errors.New("activities: the draft is no longer in the mailbox")

// Drafts composes the app's drafts in a mailbox for the API, on demand,
// with the activities' token handling and the mailbox's request budget
// (docs/sending.md#drafts). A draft is stamped with its send's key like
// any draft outlookd sends, so making it again after a lost answer finds
// it instead of making another, and sending it later finds it too.
type Drafts struct {
	A *Activities
}

// Make makes sure the mailbox holds the draft the send names, with its
// files, and answers its immutable ID: the draft found by its key, or a
// new one. ErrDraftGone when the key was found sent.
func (d Drafts) Make(ctx context.Context, ref workflows.SendRef) (string, error) {
	snd, err := d.A.Store.GetSendByID(ctx, ref.SendID)
	if err != nil {
		return "", fmt.Errorf("activities: draft %s: %w", ref.SendID, err)
	}
	atts, err := d.A.Store.SendAttachments(ctx, ref.SendID)
	if err != nil {
		return "", err
	}
	m, err := d.A.mailboxFor(ctx, ref)
	if err != nil {
		return "", err
	}
	loc, err := m.locate(ctx, ref.SendID)
	if err != nil {
		return "", err
	}
	id := loc.MessageID
	switch loc.Found {
	case workflows.FoundNowhere:
		if id, err = m.createDraft(ctx, ref.SendID, snd.Message); err != nil {
			return "", err
		}
	case workflows.FoundDrafts:
	default:
		return "", fmt.Errorf("activities: draft %s found in %s: %w", ref.SendID, loc.Found, ErrDraftGone)
	}
	if err := m.attach(ctx, id, atts); err != nil {
		return "", err
	}
	return id, nil
}

// Replace writes a draft's new content (subject, body, recipients,
// reply-to, importance) over the one in the mailbox. ErrDraftGone when
// the mailbox has it no more, or no longer as a draft.
func (d Drafts) Replace(ctx context.Context, ref workflows.SendRef, draftID string, om store.OutgoingMessage) error {
	m, err := d.A.mailboxFor(ctx, ref)
	if err != nil {
		return err
	}
	full := toGraphMessage(ref.SendID, om)
	msg := models.NewMessage()
	msg.SetSubject(full.GetSubject())
	msg.SetBody(full.GetBody())
	msg.SetToRecipients(full.GetToRecipients())
	msg.SetCcRecipients(full.GetCcRecipients())
	msg.SetBccRecipients(full.GetBccRecipients())
	msg.SetReplyTo(toGraphRecipients(om.ReplyTo))
	imp := models.NORMAL_IMPORTANCE
	if p := full.GetImportance(); p != nil {
		imp = *p
	}
	msg.SetImportance(&imp)
	_, err = m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(draftID).Patch(ctx, msg,
		&users.ItemMessagesMessageItemRequestBuilderPatchRequestConfiguration{Headers: immutableIDs()})
	if ge, ok := graph.AsError(err); ok && (ge.Status == http.StatusNotFound || ge.Code == "ErrorInvalidPropertyUpdateSentMessage") {
		return fmt.Errorf("activities: draft %s: %w", draftID, ErrDraftGone)
	}
	if err != nil {
		return classifySend("update the draft", err)
	}
	return nil
}

// Discard deletes a draft from the mailbox; one already gone is no error.
func (d Drafts) Discard(ctx context.Context, ref workflows.SendRef, draftID string) error {
	m, err := d.A.mailboxFor(ctx, ref)
	if err != nil {
		return err
	}
	err = m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(draftID).Delete(ctx,
		&users.ItemMessagesMessageItemRequestBuilderDeleteRequestConfiguration{Headers: immutableIDs()})
	if ge, ok := graph.AsError(err); ok && ge.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return classifyGraph("delete the draft", err)
	}
	return nil
}

// SendRefusal reads the reason of a message Graph refused for good, as the
// send activities classify it.
func SendRefusal(err error) (reason, text string, ok bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrSendRefused {
		return "", "", false
	}
	var d reasonDetail
	if appErr.HasDetails() && appErr.Details(&d) == nil {
		return d.Reason, d.Text, true
	}
	return workflows.ReasonGraphRefused, workflows.SendReasonText[workflows.ReasonGraphRefused], true
}
