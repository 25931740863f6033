package conformance_test

import (
	"context"
	"testing"
	"time"

	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

func ptr[T any](v T) *T { return &v }

func TestSDKSubscriptions(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond}})
	ctx := context.Background()
	c := newClient(t, st, "ada@contoso.example", "Mail.Read")
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	sub := models.NewSubscription()
	sub.SetChangeType(ptr("created,updated,deleted"))
	sub.SetNotificationUrl(&rc.URL)
	sub.SetLifecycleNotificationUrl(&lc.URL)
	sub.SetResource(ptr("me/mailFolders('inbox')/messages"))
	sub.SetExpirationDateTime(ptr(st.Sim.Clock().Now().Add(48 * time.Hour)))
	sub.SetClientState(ptr("state-from-the-sdk"))
	created, err := c.Subscriptions().Post(ctx, sub, nil)
	if err != nil {
		t.Fatalf("create (gzip body): %v", err)
	}
	if created.GetId() == nil || *created.GetClientState() != "state-from-the-sdk" || rc.Handshakes() != 1 {
		t.Fatalf("created = %v", created)
	}
	if _, err := st.Ctl.InjectMessages(ctx, st.Ada.UPN, graphsim.MessageSpec{Subject: "hello"}); err != nil {
		t.Fatal(err)
	}
	rc.WaitFor(t, 5*time.Second, "a notification", func(it []map[string]any) bool { return len(it) == 1 })

	renew := models.NewSubscription()
	renew.SetExpirationDateTime(ptr(st.Sim.Clock().Now().Add(96 * time.Hour)))
	renewed, err := c.Subscriptions().BySubscriptionId(*created.GetId()).Patch(ctx, renew, nil)
	if err != nil || renewed.GetExpirationDateTime().Sub(*created.GetExpirationDateTime()) < 47*time.Hour {
		t.Fatalf("renew: %v %v", renewed, err)
	}
	if err := c.Subscriptions().BySubscriptionId(*created.GetId()).Reauthorize().Post(ctx, nil); err != nil {
		t.Fatalf("reauthorize: %v", err)
	}
	list, err := c.Subscriptions().Get(ctx, nil)
	if err != nil || len(list.GetValue()) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	too := models.NewSubscription()
	too.SetExpirationDateTime(ptr(st.Sim.Clock().Now().Add(8 * 24 * time.Hour)))
	_, err = c.Subscriptions().BySubscriptionId(*created.GetId()).Patch(ctx, too, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 400 || ge.Code != "ExtensionError" {
		t.Errorf("renew past the maximum: %v", err)
	}
	if err := c.Subscriptions().BySubscriptionId(*created.GetId()).Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Subscriptions().BySubscriptionId(*created.GetId()).Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 404 {
		t.Errorf("get after delete: %v", err)
	}
}

func recipient(addr string) models.Recipientable {
	r := models.NewRecipient()
	e := models.NewEmailAddress()
	e.SetAddress(&addr)
	r.SetEmailAddress(e)
	return r
}

func TestSDKSendDraftsAndBatch(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{})
	ctx := context.Background()
	c := newClient(t, st, "ada@contoso.example", "Mail.ReadWrite", "Mail.Send", "User.Read")

	msg := models.NewMessage()
	msg.SetSubject(ptr("From the SDK"))
	body := models.NewItemBody()
	ct := models.TEXT_BODYTYPE
	body.SetContentType(&ct)
	body.SetContent(ptr("hello"))
	msg.SetBody(body)
	msg.SetToRecipients([]models.Recipientable{recipient("support@contoso.example")})
	req := users.NewItemSendMailPostRequestBody()
	req.SetMessage(msg)
	req.SetSaveToSentItems(ptr(true))
	if err := c.Me().SendMail().Post(ctx, req, nil); err != nil {
		t.Fatalf("sendMail: %v", err)
	}
	sent, _ := st.Ctl.SentMail(ctx, st.Ada.UPN)
	if len(sent) != 1 || sent[0].Subject != "From the SDK" {
		t.Fatalf("sent = %+v", sent)
	}

	draft := models.NewMessage()
	draft.SetSubject(ptr("Draft"))
	draft.SetToRecipients([]models.Recipientable{recipient("someone@fabrikam.example")})
	d, err := c.Me().Messages().Post(ctx, draft, nil)
	if err != nil || !*d.GetIsDraft() {
		t.Fatalf("create draft: %v %v", d, err)
	}
	patch := models.NewMessage()
	patch.SetSubject(ptr("Draft v2"))
	if p, err := c.Me().Messages().ByMessageId(*d.GetId()).Patch(ctx, patch, nil); err != nil || *p.GetSubject() != "Draft v2" {
		t.Fatalf("patch: %v %v", p, err)
	}
	// The SDK's send sends Content-Length: 0, as Graph requires.
	if err := c.Me().Messages().ByMessageId(*d.GetId()).Send().Post(ctx, nil); err != nil {
		t.Fatalf("send draft: %v", err)
	}
	if sent, _ := st.Ctl.SentMail(ctx, st.Ada.UPN); len(sent) != 2 {
		t.Errorf("sent after draft: %d", len(sent))
	}
	ids, _ := st.Ctl.InjectMessages(ctx, st.Ada.UPN, graphsim.MessageSpec{Subject: "move me"})
	mv := users.NewItemMessagesItemMovePostRequestBody()
	mv.SetDestinationId(ptr("archive"))
	moved, err := c.Me().Messages().ByMessageId(ids[0]).Move().Post(ctx, mv, nil)
	if err != nil || moved.GetParentFolderId() == nil {
		t.Fatalf("move: %v %v", moved, err)
	}

	// $batch through the SDK's batch support.
	batch := msgraphcore.NewBatchRequest(c.Adapter)
	meInfo, err := c.Me().ToGetRequestInformation(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	meItem, err := batch.AddBatchRequestStep(*meInfo)
	if err != nil {
		t.Fatal(err)
	}
	missingInfo, _ := c.Me().Messages().ByMessageId("AAMkADInope=").ToGetRequestInformation(ctx, nil)
	missingItem, _ := batch.AddBatchRequestStep(*missingInfo)
	resp, err := batch.Send(ctx, c.Adapter)
	if err != nil {
		t.Fatalf("batch: %v", err)
	}
	me, err := msgraphcore.GetBatchResponseById[models.Userable](resp, *meItem.GetId(), models.CreateUserFromDiscriminatorValue)
	if err != nil || *me.GetUserPrincipalName() != "ada@contoso.example" {
		t.Errorf("batch /me: %v %v", me, err)
	}
	if status := resp.GetResponseById(*missingItem.GetId()).GetStatus(); status == nil || *status != 404 {
		t.Errorf("batch missing message: %v", status)
	}
	for range 19 {
		if _, err := batch.AddBatchRequestStep(*meInfo); err != nil {
			return // the SDK enforces the limit of 20 on its side too
		}
	}
	t.Error("the SDK accepted 21 batch steps")
}
