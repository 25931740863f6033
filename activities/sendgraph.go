package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// mailbox is what the send activities do in one mailbox through Graph:
// look a send's key up, create and fill its stamped draft, and send it.
// Every ID is an immutable one (docs/graph.md#immutable-ids), so the draft
// keeps its ID when sending moves it to Outbox and Sent Items.
type mailbox struct {
	gc     *graph.Client
	userID string
	// hc carries upload ranges, which go to a pre-authenticated URL
	// outside Graph's client.
	hc *http.Client
	// files reads an upload the app made through the API, from an
	// offset (store.Store.UploadReader).
	files func(ctx context.Context, uploadID string, from int64) io.Reader
	// progress, when set, hears of each range of a file that went
	// (PrepareSend's heartbeat).
	progress func(UploadProgress)
}

// immutableIDs asks Graph for immutable IDs.
func immutableIDs() *abstractions.RequestHeaders {
	h := abstractions.NewRequestHeaders()
	h.Add("Prefer", `IdType="ImmutableId"`)
	return h
}

// keyFilter finds the messages stamped with a send's ID
// (docs/graph.md#extended-properties).
func keyFilter(sendID string) string {
	return fmt.Sprintf("singleValueExtendedProperties/any(ep: ep/id eq '%s' and ep/value eq '%s')", workflows.SendKeyProperty, sendID)
}

// foundMessage is a message found by its key.
type foundMessage struct {
	id      string
	isDraft bool
	sender  string
}

// inFolder lists the messages stamped with the key in a well-known folder
// ("" for the whole mailbox).
func (m *mailbox) inFolder(ctx context.Context, folder, sendID string) ([]foundMessage, error) {
	filter := keyFilter(sendID)
	top := int32(10)
	sel := []string{"id", "isDraft", "sender"}
	var page models.MessageCollectionResponseable
	var err error
	if folder == "" {
		page, err = m.gc.Users().ByUserId(m.userID).Messages().Get(ctx, &users.ItemMessagesRequestBuilderGetRequestConfiguration{
			Headers:         immutableIDs(),
			QueryParameters: &users.ItemMessagesRequestBuilderGetQueryParameters{Filter: &filter, Select: sel, Top: &top},
		})
	} else {
		page, err = m.gc.Users().ByUserId(m.userID).MailFolders().ByMailFolderId(folder).Messages().Get(ctx, &users.ItemMailFoldersItemMessagesRequestBuilderGetRequestConfiguration{
			Headers:         immutableIDs(),
			QueryParameters: &users.ItemMailFoldersItemMessagesRequestBuilderGetQueryParameters{Filter: &filter, Select: sel, Top: &top},
		})
	}
	if err != nil {
		return nil, err
	}
	var out []foundMessage
	for _, msg := range page.GetValue() {
		f := foundMessage{id: deref(msg.GetId())}
		if d := msg.GetIsDraft(); d != nil {
			f.isDraft = *d
		}
		if snd := msg.GetSender(); snd != nil && snd.GetEmailAddress() != nil {
			f.sender = deref(snd.GetEmailAddress().GetAddress())
		}
		out = append(out, f)
	}
	return out, nil
}

// locate says where the mailbox shows a send's key: Sent Items first (the
// send went), then Outbox (it is being submitted), then Drafts (it was
// not sent), then anywhere else (a sent copy the user moved).
func (m *mailbox) locate(ctx context.Context, sendID string) (workflows.LocateSendResult, error) {
	for _, folder := range []string{workflows.FoundSentItems, workflows.FoundOutbox, workflows.FoundDrafts} {
		found, err := m.inFolder(ctx, folder, sendID)
		if err != nil {
			return workflows.LocateSendResult{}, classifyGraph("look for the send in "+folder, err)
		}
		if len(found) > 0 {
			out := workflows.LocateSendResult{Found: folder, MessageID: found[0].id}
			if folder == workflows.FoundSentItems {
				out.Sender = found[0].sender
			}
			return out, nil
		}
	}
	found, err := m.inFolder(ctx, "", sendID)
	if err != nil {
		return workflows.LocateSendResult{}, classifyGraph("look for the send in the mailbox", err)
	}
	for _, f := range found {
		if !f.isDraft {
			return workflows.LocateSendResult{Found: workflows.FoundElsewhere, MessageID: f.id, Sender: f.sender}, nil
		}
	}
	return workflows.LocateSendResult{}, nil
}

// locateNew is locate for a send that is usually nowhere yet (its draft
// not made): one look over the whole mailbox, which holds Drafts, Outbox
// and Sent Items, says so; only a key found somewhere is looked for
// folder by folder.
func (m *mailbox) locateNew(ctx context.Context, sendID string) (workflows.LocateSendResult, error) {
	found, err := m.inFolder(ctx, "", sendID)
	if err != nil {
		return workflows.LocateSendResult{}, classifyGraph("look for the send in the mailbox", err)
	}
	if len(found) == 0 {
		return workflows.LocateSendResult{}, nil
	}
	return m.locate(ctx, sendID)
}

// toGraphMessage builds the draft of an outgoing message, stamped with
// the send's ID.
func toGraphMessage(sendID string, om store.OutgoingMessage) models.Messageable {
	msg := models.NewMessage()
	subject := om.Subject
	msg.SetSubject(&subject)
	body := models.NewItemBody()
	content := om.Body.Content
	body.SetContent(&content)
	bt := models.TEXT_BODYTYPE
	if om.Body.ContentType == "html" {
		bt = models.HTML_BODYTYPE
	}
	body.SetContentType(&bt)
	msg.SetBody(body)
	msg.SetToRecipients(toGraphRecipients(om.To))
	msg.SetCcRecipients(toGraphRecipients(om.Cc))
	msg.SetBccRecipients(toGraphRecipients(om.Bcc))
	if len(om.ReplyTo) > 0 {
		msg.SetReplyTo(toGraphRecipients(om.ReplyTo))
	}
	if om.Importance != "" {
		imp := models.NORMAL_IMPORTANCE
		switch om.Importance {
		case "low":
			imp = models.LOW_IMPORTANCE
		case "high":
			imp = models.HIGH_IMPORTANCE
		}
		msg.SetImportance(&imp)
	}
	if len(om.Headers) > 0 {
		hs := make([]models.InternetMessageHeaderable, 0, len(om.Headers))
		for _, h := range om.Headers {
			mh := models.NewInternetMessageHeader()
			name, value := h.Name, h.Value
			mh.SetName(&name)
			mh.SetValue(&value)
			hs = append(hs, mh)
		}
		msg.SetInternetMessageHeaders(hs)
	}
	msg.SetSingleValueExtendedProperties([]models.SingleValueLegacyExtendedPropertyable{stamp(sendID)})
	return msg
}

// stamp is the send's key as an extended property.
func stamp(sendID string) models.SingleValueLegacyExtendedPropertyable {
	p := models.NewSingleValueLegacyExtendedProperty()
	id, value := workflows.SendKeyProperty, sendID
	p.SetId(&id)
	p.SetValue(&value)
	return p
}

func toGraphRecipients(rs []store.Recipient) []models.Recipientable {
	out := make([]models.Recipientable, 0, len(rs))
	for _, r := range rs {
		ea := models.NewEmailAddress()
		addr := r.Address
		ea.SetAddress(&addr)
		if r.Name != "" {
			name := r.Name
			ea.SetName(&name)
		}
		rc := models.NewRecipient()
		rc.SetEmailAddress(ea)
		out = append(out, rc)
	}
	return out
}

// createDraft creates the stamped draft and answers its immutable ID.
func (m *mailbox) createDraft(ctx context.Context, sendID string, om store.OutgoingMessage) (string, error) {
	created, err := m.gc.Users().ByUserId(m.userID).Messages().Post(ctx, toGraphMessage(sendID, om),
		&users.ItemMessagesRequestBuilderPostRequestConfiguration{Headers: immutableIDs()})
	if err != nil {
		return "", classifySend("create the draft", err)
	}
	return deref(created.GetId()), nil
}

// attachmentCount counts the files already on a draft.
func (m *mailbox) attachmentCount(ctx context.Context, draftID string) (int, error) {
	page, err := m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(draftID).Attachments().Get(ctx,
		&users.ItemMessagesItemAttachmentsRequestBuilderGetRequestConfiguration{
			Headers:         immutableIDs(),
			QueryParameters: &users.ItemMessagesItemAttachmentsRequestBuilderGetQueryParameters{Select: []string{"id", "name", "size"}},
		})
	if err != nil {
		return 0, classifySend("list the draft's attachments", err)
	}
	return len(page.GetValue()), nil
}

// attach adds the attachments the draft does not have yet. They are added
// one at a time, in order, so the count on the draft says how many went
// (a retry after an answer was lost counts again and goes on).
func (m *mailbox) attach(ctx context.Context, draftID string, atts []store.SendAttachment) error {
	if len(atts) == 0 {
		return nil
	}
	have, err := m.attachmentCount(ctx, draftID)
	if err != nil {
		return err
	}
	for _, a := range atts[min(have, len(atts)):] {
		if a.FileSize() >= uploadThreshold {
			if err := m.upload(ctx, draftID, a); err != nil {
				return err
			}
			continue
		}
		if err := m.readWhole(ctx, &a); err != nil {
			return err
		}
		if _, err := m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(draftID).Attachments().Post(ctx, fileAttachment(a),
			&users.ItemMessagesItemAttachmentsRequestBuilderPostRequestConfiguration{Headers: immutableIDs()}); err != nil {
			return classifySend("attach "+a.Name, err)
		}
	}
	return nil
}

// submit sends a draft once. Its answer is sorted, never acted on by
// sending again: Graph's send is not idempotent
// (docs/graph.md#ambiguous-send-answers), and the SDK's retry handler is
// off for every outlookd client (graph.Config.SDKRetries).
func (m *mailbox) submit(ctx context.Context, draftID string) (workflows.SubmitSendResult, error) {
	err := m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(draftID).Send().Post(ctx,
		&users.ItemMessagesItemSendRequestBuilderPostRequestConfiguration{Headers: immutableIDs()})
	return sortSubmitAnswer(err)
}

// sortSubmitAnswer sorts Graph's answer to a draft's send: accepted (a
// 202, with or without Retry-After), refused for good (with a reason),
// not a draft any more (it went before), or ambiguous (a timeout, a reset,
// a 5xx, anything else: the mailbox will tell).
func sortSubmitAnswer(err error) (workflows.SubmitSendResult, error) {
	if err == nil {
		return workflows.SubmitSendResult{Accepted: true}, nil
	}
	var classified interface{ Type() string }
	if errors.As(err, &classified) && classified.Type() == workflows.ErrReauthRequired {
		return workflows.SubmitSendResult{}, err // the token died before the request
	}
	ge, ok := graph.AsError(err)
	if !ok {
		return workflows.SubmitSendResult{Ambiguous: true, Detail: transportDetail(err)}, nil
	}
	switch {
	case ge.Status == 404 && ge.HasCode("ErrorItemNotFound"),
		ge.Status == 400 && ge.HasCode("ErrorInvalidOperation"):
		return workflows.SubmitSendResult{NotADraft: true, Detail: ge.Error()}, nil
	case ge.Status >= 400 && ge.Status < 500 && ge.Status != 401 && ge.Status != 408 && ge.Status != 429:
		if reason := sendRefusal(ge); reason != "" {
			return workflows.SubmitSendResult{}, refused(reason, "send the draft", ge)
		}
	}
	return workflows.SubmitSendResult{Ambiguous: true, Detail: ge.Error()}, nil
}

func transportDetail(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "the request timed out"
	case errors.Is(err, context.Canceled):
		return "the request was canceled"
	}
	return "the connection failed: " + err.Error()
}

// sendRefusal maps a Graph refusal of a message to a send's reason; ""
// for an answer that is no refusal of the message.
func sendRefusal(ge *graph.Error) string {
	switch {
	case ge.HasCode("ErrorSendAsDenied"):
		return workflows.ReasonSendAsDenied
	case ge.HasCode("ErrorMessageSubmissionBlocked"):
		return workflows.ReasonSubmissionBlock
	case ge.HasCode("ErrorQuotaExceeded"):
		return workflows.ReasonMailboxFull
	case ge.HasCode("ErrorMessageSizeExceeded"), ge.HasCode("ErrorAttachmentSizeLimitExceeded"), ge.Status == http.StatusRequestEntityTooLarge,
		ge.Status == 400 && strings.Contains(ge.Message, "maximum request length"):
		return workflows.ReasonMessageTooLarge
	case ge.HasCode("ErrorInvalidRecipients"), ge.HasCode("ErrorInvalidSmtpAddress"):
		return workflows.ReasonInvalidRecipient
	case ge.HasCode("ErrorTooManyRecipients"):
		return workflows.ReasonTooManyRecipient
	case ge.HasCode("ErrorAccessDenied"), ge.Status == 403:
		return workflows.ReasonSendNotGranted
	case ge.Status == 404:
		return ""
	case ge.Status >= 400 && ge.Status < 500 && ge.Status != 401 && ge.Status != 408 && ge.Status != 429:
		return workflows.ReasonGraphRefused
	}
	return ""
}

// refused is the non-retryable error of a message Graph refused; its
// details carry the reason.
func refused(reason, op string, ge *graph.Error) error {
	return newSendRefused(reason, fmt.Sprintf("%s: Graph refused: %d %s: %s", op, ge.Status, ge.Code, ge.Message), ge)
}

// classifySend classifies a Graph error of a step before the send (a
// draft's creation, an attachment): a refusal of the message fails the
// send with its reason; the rest is classified as any Graph call.
func classifySend(op string, err error) error {
	if ge, ok := graph.AsError(err); ok {
		if reason := sendRefusal(ge); reason != "" {
			return refused(reason, op, ge)
		}
	}
	return classifyGraph(op, err)
}

// Kinds of sends that answer a synced message.
const (
	kindReply    = "reply"
	kindReplyAll = "reply_all"
	kindForward  = "forward"
	// kindDraft: a draft the app made through the API, sent later.
	kindDraft = "draft"
)

// responseMessage is what overrides the defaults of a reply or forward
// draft: the stamp always, recipients, importance and headers when the
// app gave them (docs/graph.md#replying-and-forwarding).
func responseMessage(sendID string, om store.OutgoingMessage) models.Messageable {
	msg := models.NewMessage()
	if len(om.To) > 0 {
		msg.SetToRecipients(toGraphRecipients(om.To))
	}
	if len(om.Cc) > 0 {
		msg.SetCcRecipients(toGraphRecipients(om.Cc))
	}
	if len(om.Bcc) > 0 {
		msg.SetBccRecipients(toGraphRecipients(om.Bcc))
	}
	full := toGraphMessage(sendID, om)
	msg.SetImportance(full.GetImportance())
	msg.SetInternetMessageHeaders(full.GetInternetMessageHeaders())
	msg.SetSingleValueExtendedProperties(full.GetSingleValueExtendedProperties())
	return msg
}

// createResponse creates the stamped draft of a reply, reply-all or
// forward to a message, in its conversation, with the app's comment over
// the quoted original. An original no longer in the mailbox fails the
// send with original_not_found.
func (m *mailbox) createResponse(ctx context.Context, kind, originalID, sendID string, om store.OutgoingMessage) (string, error) {
	comment := om.Body.Content
	msg := responseMessage(sendID, om)
	item := m.gc.Users().ByUserId(m.userID).Messages().ByMessageId(originalID)
	var created models.Messageable
	var err error
	switch kind {
	case kindReply:
		body := users.NewItemMessagesItemCreateReplyPostRequestBody()
		body.SetComment(&comment)
		body.SetMessage(msg)
		created, err = item.CreateReply().Post(ctx, body, &users.ItemMessagesItemCreateReplyRequestBuilderPostRequestConfiguration{Headers: immutableIDs()})
	case kindReplyAll:
		body := users.NewItemMessagesItemCreateReplyAllPostRequestBody()
		body.SetComment(&comment)
		body.SetMessage(msg)
		created, err = item.CreateReplyAll().Post(ctx, body, &users.ItemMessagesItemCreateReplyAllRequestBuilderPostRequestConfiguration{Headers: immutableIDs()})
	case kindForward:
		body := users.NewItemMessagesItemCreateForwardPostRequestBody()
		body.SetComment(&comment)
		body.SetMessage(msg)
		created, err = item.CreateForward().Post(ctx, body, &users.ItemMessagesItemCreateForwardRequestBuilderPostRequestConfiguration{Headers: immutableIDs()})
	default:
		return "", fmt.Errorf("activities: unknown kind of response %q", kind)
	}
	if ge, ok := graph.AsError(err); ok && ge.Status == 404 {
		return "", refused(workflows.ReasonOriginalGone, "create the "+kind+" draft", ge)
	}
	if err != nil {
		return "", classifySend("create the "+kind+" draft", err)
	}
	return deref(created.GetId()), nil
}

// sendMail sends a message in one request (a send-only connection's way),
// its files inline, and sorts the answer as a draft's send's.
func (m *mailbox) sendMail(ctx context.Context, sendID string, om store.OutgoingMessage, atts []store.SendAttachment) (workflows.SubmitSendResult, error) {
	msg := toGraphMessage(sendID, om)
	if len(atts) > 0 {
		list := make([]models.Attachmentable, 0, len(atts))
		for _, a := range atts {
			list = append(list, fileAttachment(a))
		}
		msg.SetAttachments(list)
	}
	body := users.NewItemSendMailPostRequestBody()
	body.SetMessage(msg)
	save := true
	body.SetSaveToSentItems(&save)
	err := m.gc.Users().ByUserId(m.userID).SendMail().Post(ctx, body, nil)
	res, err := sortSubmitAnswer(err)
	if res.NotADraft {
		// sendMail has no draft: a 404 is a refusal of the request.
		return workflows.SubmitSendResult{}, newSendRefused(workflows.ReasonGraphRefused, "sendMail: "+res.Detail, nil)
	}
	return res, err
}

// fileAttachment is a file as Graph takes it.
func fileAttachment(a store.SendAttachment) models.Attachmentable {
	fa := models.NewFileAttachment()
	name, ct := a.Name, a.ContentType
	fa.SetName(&name)
	fa.SetContentType(&ct)
	inline := a.IsInline
	fa.SetIsInline(&inline)
	if a.ContentID != "" {
		cid := a.ContentID
		fa.SetContentId(&cid)
	}
	fa.SetContentBytes(a.Content)
	return fa
}
