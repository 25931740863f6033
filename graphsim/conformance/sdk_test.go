package conformance_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	abs "github.com/microsoft/kiota-abstractions-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

func newClient(t *testing.T, st *simtest.Tenant, user string, scopes ...string) *graph.Client {
	t.Helper()
	c, err := graph.NewClient(graph.Config{BaseURL: st.Sim.GraphURL()}, st.TokenSource(t, user, append([]string{"offline_access"}, scopes...)...))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func immutable() *abs.RequestHeaders {
	h := abs.NewRequestHeaders()
	h.Add("Prefer", `IdType="ImmutableId"`)
	return h
}

func TestSDKMeAndUsers(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{})
	ctx := context.Background()
	c := newClient(t, st, "ada@contoso.example", "User.Read", "User.ReadBasic.All")
	me, err := c.Me().Get(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *me.GetUserPrincipalName() != "ada@contoso.example" || *me.GetId() != st.Ada.ID {
		t.Errorf("me = %v %v", *me.GetUserPrincipalName(), *me.GetId())
	}
	top := int32(1)
	resp, err := c.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Top: &top}})
	if err != nil {
		t.Fatal(err)
	}
	it, err := msgraphcore.NewPageIterator[models.Userable](resp, c.Adapter, models.CreateUserCollectionResponseFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := it.Iterate(ctx, func(u models.Userable) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("iterated %d users, want 3", n)
	}
	_, err = c.Users().ByUserId("nobody@contoso.example").Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 404 || !ge.HasCode("Request_ResourceNotFound") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestSDKFoldersMessagesAndAttachments(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{})
	ctx := context.Background()
	projects, err := st.Ctl.CreateFolder(ctx, st.Ada.UPN, "inbox", "Projects")
	if err != nil {
		t.Fatal(err)
	}
	specs := make([]graphsim.MessageSpec, 23)
	for i := range specs {
		specs[i] = graphsim.MessageSpec{Subject: "hello", Received: time.Now().Add(-time.Duration(i) * time.Hour), From: graphsim.Recipient{Name: "F", Address: "f@fabrikam.example"}}
	}
	specs[0].Attachments = []graphsim.AttachmentSpec{{Name: "a.pdf", ContentType: "application/pdf", Content: []byte("%PDF-1.7")}}
	ids, err := st.Ctl.InjectMessages(ctx, st.Ada.UPN, specs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Ctl.InjectMessages(ctx, st.Ada.UPN, graphsim.MessageSpec{Folder: projects, Subject: "nested"}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, st, "ada@contoso.example", "Mail.Read")

	folders, err := c.Me().MailFolders().Get(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(folders.GetValue()) != 8 {
		t.Errorf("top-level folders = %d", len(folders.GetValue()))
	}
	inbox, err := c.Me().MailFolders().ByMailFolderId("inbox").Get(ctx, nil)
	if err != nil || *inbox.GetDisplayName() != "Inbox" || *inbox.GetChildFolderCount() != 1 || *inbox.GetTotalItemCount() != 23 {
		t.Fatalf("inbox = %v %v", inbox, err)
	}
	kids, err := c.Me().MailFolders().ByMailFolderId(*inbox.GetId()).ChildFolders().Get(ctx, nil)
	if err != nil || len(kids.GetValue()) != 1 || *kids.GetValue()[0].GetId() != projects {
		t.Fatalf("childFolders = %v %v", kids, err)
	}

	// Paging with the SDK's iterator; Prefer headers are set on each page.
	top := int32(5)
	cfg := &users.ItemMailFoldersItemMessagesRequestBuilderGetRequestConfiguration{
		Headers:         immutable(),
		QueryParameters: &users.ItemMailFoldersItemMessagesRequestBuilderGetQueryParameters{Top: &top, Select: []string{"subject", "receivedDateTime", "hasAttachments"}},
	}
	page, err := c.Users().ByUserId(st.Ada.ID).MailFolders().ByMailFolderId("inbox").Messages().Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	it, err := msgraphcore.NewPageIterator[models.Messageable](page, c.Adapter, models.CreateMessageCollectionResponseFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	it.SetHeaders(immutable())
	seen := map[string]bool{}
	if err := it.Iterate(ctx, func(m models.Messageable) bool {
		seen[*m.GetId()] = true
		if m.GetBody() != nil {
			t.Error("$select returned a body")
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("message %s not iterated (immutable IDs)", id)
		}
	}

	msg, err := c.Me().Messages().ByMessageId(ids[0]).Get(ctx, &users.ItemMessagesMessageItemRequestBuilderGetRequestConfiguration{Headers: immutable()})
	if err != nil || !*msg.GetHasAttachments() || *msg.GetFrom().GetEmailAddress().GetAddress() != "f@fabrikam.example" || msg.GetReceivedDateTime() == nil {
		t.Fatalf("message = %v %v", msg, err)
	}
	atts, err := c.Me().Messages().ByMessageId(ids[0]).Attachments().Get(ctx, nil)
	if err != nil || len(atts.GetValue()) != 1 {
		t.Fatalf("attachments = %v %v", atts, err)
	}
	fa, ok := atts.GetValue()[0].(models.FileAttachmentable)
	if !ok || string(fa.GetContentBytes()) != "%PDF-1.7" || *fa.GetSize() != 8 {
		t.Errorf("attachment is %T", atts.GetValue()[0])
	}

	_, err = c.Me().Messages().ByMessageId("AAMkAGInope=").Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 404 || ge.Code != "ErrorItemNotFound" {
		t.Errorf("missing message: %v", err)
	}
	filter := "isRead eq false"
	_, err = c.Me().Messages().Get(ctx, &users.ItemMessagesRequestBuilderGetRequestConfiguration{QueryParameters: &users.ItemMessagesRequestBuilderGetQueryParameters{Filter: &filter, Orderby: []string{"receivedDateTime desc"}}})
	if ge, ok := graph.AsError(err); !ok || ge.Status != 400 || ge.Code != "InefficientFilter" {
		t.Errorf("inefficient filter: %v", err)
	}
}

// deltaRound pages a delta round through the SDK and returns items and the
// deltaLink.
func deltaRound(t *testing.T, c *graph.Client, b *users.ItemMailFoldersItemMessagesDeltaRequestBuilder) ([]models.Messageable, string) {
	t.Helper()
	ctx := context.Background()
	h := immutable()
	h.Add("Prefer", "odata.maxpagesize=4")
	var out []models.Messageable
	for {
		resp, err := b.GetAsDeltaGetResponse(ctx, &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: h})
		if err != nil {
			t.Fatalf("delta: %v", err)
		}
		out = append(out, resp.GetValue()...)
		if l := resp.GetOdataDeltaLink(); l != nil {
			return out, *l
		}
		next := resp.GetOdataNextLink()
		if next == nil {
			t.Fatal("no nextLink or deltaLink")
		}
		b = b.WithUrl(*next)
	}
}

func TestSDKDelta(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{})
	ctx := context.Background()
	ids, err := st.Ctl.InjectMessages(ctx, st.Ada.UPN, make([]graphsim.MessageSpec, 10)...)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, st, "ada@contoso.example", "Mail.Read")
	delta := c.Users().ByUserId(st.Ada.ID).MailFolders().ByMailFolderId("inbox").Messages().Delta()
	items, link := deltaRound(t, c, delta)
	if len(items) != 10 {
		t.Fatalf("initial round: %d", len(items))
	}
	if err := st.Ctl.MoveMessage(ctx, st.Ada.UPN, ids[0], "archive"); err != nil {
		t.Fatal(err)
	}
	items, _ = deltaRound(t, c, delta.WithUrl(link))
	if len(items) != 1 || *items[0].GetId() != ids[0] || items[0].GetAdditionalData()["@removed"] == nil {
		t.Fatalf("removal round: %v", items)
	}
	if err := st.Ctl.ExpireDeltaTokens(ctx, st.Ada.UPN); err != nil {
		t.Fatal(err)
	}
	_, err = delta.WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
	ge, ok := graph.AsError(err)
	if !ok || ge.Status != 410 || !ge.SyncStateLost() || !ge.HasCode("syncstatenotfound") {
		t.Fatalf("expired delta: %v", err)
	}
}

func TestSDKErrorsAndThrottling(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{})
	ctx := context.Background()
	c := newClient(t, st, "ada@contoso.example", "Mail.Read")
	st.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Throttle: 1, RetryAfter: 7})
	_, err := c.Me().Messages().Get(ctx, nil)
	ge, ok := graph.AsError(err)
	if !ok || ge.Status != 429 || !ge.Throttled() || ge.RetryAfter != 7*time.Second {
		t.Fatalf("throttled: %v (%+v)", err, ge)
	}
	st.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Unavailable: 1})
	_, err = c.Me().Messages().Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 503 || !ge.Throttled() {
		t.Fatalf("503 with empty body: %v", err)
	}
	st.Sim.ClearFaults()
	// The SDK's own retry handler, when kept, rides out a transient 503.
	// 30% of requests fail: a call fails only if all four tries do (0.8%).
	st.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Unavailable: 0.3, RetryAfter: 1})
	retrying, err := graph.NewClient(graph.Config{BaseURL: st.Sim.GraphURL(), SDKRetries: true}, st.TokenSource(t, "ada@contoso.example", "offline_access", "Mail.Read"))
	if err != nil {
		t.Fatal(err)
	}
	ok503 := 0
	for range 4 {
		if _, err := retrying.Me().Messages().Get(ctx, nil); err == nil {
			ok503++
		}
	}
	if ok503 < 3 {
		t.Errorf("with SDK retries only %d of 4 calls succeeded", ok503)
	}
	st.Sim.ClearFaults()
	// Access denied on another mailbox.
	_, err = c.Users().ByUserId("support@contoso.example").Messages().Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 403 || ge.Code != "ErrorAccessDenied" {
		t.Errorf("shared mailbox without rights: %v", err)
	}
	// A revoked refresh token surfaces through the token source as the
	// identity platform's invalid_grant, not as a Graph answer.
	tok := st.SignIn(t, "ada@contoso.example", "offline_access", "Mail.Read")
	if err := st.Ctl.Revoke(ctx, "ada@contoso.example", graphsim.RevokeSignInSessions); err != nil {
		t.Fatal(err)
	}
	stale, err := graph.NewClient(graph.Config{BaseURL: st.Sim.GraphURL()}, st.OAuth("common").TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = stale.Me().Messages().Get(ctx, nil)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || !strings.Contains(re.ErrorDescription, "AADSTS50173") {
		t.Fatalf("revoked: %v", err)
	}
	if _, isGraph := graph.AsError(err); isGraph {
		t.Errorf("a token failure was reported as a Graph answer: %v", err)
	}
	// An access token the simulator considers expired is a Graph 401.
	st.Sim.AdvanceClock(2 * time.Hour)
	_, err = c.Me().Messages().Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 401 || ge.Code != "InvalidAuthenticationToken" {
		t.Errorf("expired access token: %v", err)
	}
}

func parseQuery(raw string) (url.Values, error) { return url.ParseQuery(raw) }

// claims decodes a JWT's payload.
func claims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
