package conformance_test

import (
	"context"
	"testing"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// appClient is the daemon app's Graph client, with app-only tokens.
func appClient(t *testing.T, o *simtest.Org) *graph.Client {
	t.Helper()
	c, err := graph.NewClient(graph.Config{BaseURL: o.Sim.GraphURL()}, o.AppTokenSource())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// usersDeltaRound pages /users/delta through the SDK and returns the users
// by ID and the deltaLink.
func usersDeltaRound(t *testing.T, b *users.DeltaRequestBuilder, cfg *users.DeltaRequestBuilderGetRequestConfiguration) (map[string]models.Userable, string) {
	t.Helper()
	out := map[string]models.Userable{}
	for {
		resp, err := b.GetAsDeltaGetResponse(context.Background(), cfg)
		if err != nil {
			t.Fatalf("users delta: %v", err)
		}
		for _, u := range resp.GetValue() {
			out[*u.GetId()] = u
		}
		if l := resp.GetOdataDeltaLink(); l != nil {
			return out, *l
		}
		next := resp.GetOdataNextLink()
		if next == nil {
			t.Fatal("no nextLink or deltaLink")
		}
		b, cfg = b.WithUrl(*next), nil
	}
}

func removedReason(u models.Userable) any {
	r, _ := u.GetAdditionalData()["@removed"].(map[string]any)
	if r == nil {
		return nil
	}
	if s, ok := r["reason"].(*string); ok {
		return *s
	}
	return r["reason"]
}

// An organisation-wide sync through the SDK: /users/delta with app-only
// tokens, disabled and deleted users, mailbox settings, and an access policy.
func TestSDKOrganisationSync(t *testing.T) {
	o := simtest.StartOrg(t, graphsim.Options{UsersDeltaPageSize: 2})
	ctx := context.Background()
	c := appClient(t, o)
	for _, name := range []string{"leaver", "mover"} {
		if _, err := o.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: name + "@contoso.example"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := &users.DeltaRequestBuilderGetRequestConfiguration{QueryParameters: &users.DeltaRequestBuilderGetQueryParameters{Select: []string{"displayName", "userPrincipalName", "accountEnabled"}}}
	all, link := usersDeltaRound(t, c.Users().Delta(), cfg)
	if len(all) != 6 || *all[o.Shared.ID].GetAccountEnabled() || !*all[o.Ada.ID].GetAccountEnabled() {
		t.Fatalf("first round: %d users", len(all))
	}
	joiner, _ := o.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "joiner@contoso.example"})
	mover, _ := o.Sim.User("mover@contoso.example")
	gone, _ := o.Sim.User("leaver@contoso.example")
	if err := o.Ctl.DisableUser(ctx, mover.UPN); err != nil {
		t.Fatal(err)
	}
	if err := o.Ctl.DeleteUser(ctx, gone.UPN, false); err != nil {
		t.Fatal(err)
	}
	changed, _ := usersDeltaRound(t, c.Users().Delta().WithUrl(link), nil)
	if len(changed) != 3 || changed[joiner.ID].GetUserPrincipalName() == nil || *changed[mover.ID].GetAccountEnabled() || removedReason(changed[gone.ID]) != "changed" {
		t.Errorf("second round: %v", changed)
	}

	// Mailbox settings tell the shared mailbox apart.
	ms, err := c.Users().ByUserId(o.Shared.UPN).MailboxSettings().Get(ctx, nil)
	if err != nil || ms.GetUserPurpose() == nil || *ms.GetUserPurpose() != models.SHARED_USERPURPOSE || *ms.GetTimeZone() != "UTC" ||
		*ms.GetAutomaticRepliesSetting().GetStatus() != models.DISABLED_AUTOMATICREPLIESSTATUS || *ms.GetLanguage().GetLocale() != "en-US" {
		t.Fatalf("shared mailbox settings: %v %v", ms, err)
	}

	// The app reads every mailbox until a policy restricts it.
	if _, err := c.Users().ByUserId(o.Ada.UPN).Messages().Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := o.Ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: o.Tenant.Tenant.ID, AppID: o.Daemon.ClientID, AccessRight: graphsim.PolicyRestrictAccess, Members: []string{o.Shared.UPN}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Users().ByUserId(o.Ada.UPN).Messages().Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 403 || ge.Code != "ErrorAccessDenied" || ge.Message != "Access to OData is disabled." {
		t.Errorf("under the policy: %v", err)
	}
	if _, err := c.Users().ByUserId(o.Shared.UPN).MailFolders().ByMailFolderId("inbox").Messages().Get(ctx, nil); err != nil {
		t.Errorf("the shared mailbox under the policy: %v", err)
	}

	// A user without a mailbox.
	if _, err := o.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "nomail@contoso.example", NoMailbox: true}); err != nil {
		t.Fatal(err)
	}
	if err := o.Ctl.RemoveAppAccessPolicy(ctx, "contoso.example", o.Daemon.ClientID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Users().ByUserId("nomail@contoso.example").MailboxSettings().Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 404 || ge.Code != "MailboxNotEnabledForRESTAPI" {
		t.Errorf("no mailbox: %v", err)
	}
}

// A service account syncs the shared mailbox through the SDK with delegated
// .Shared access: delta works while it holds Full Access, its subscription
// is refused, and a revoked right fails the next page.
func TestSDKServiceAccountOnSharedMailbox(t *testing.T) {
	o := simtest.StartOrg(t, graphsim.Options{})
	ctx := context.Background()
	if _, err := o.Ctl.InjectMessages(ctx, o.Shared.UPN, make([]graphsim.MessageSpec, 9)...); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, o.Tenant, o.Service.UPN, "Mail.Read", "Mail.Read.Shared")
	delta := c.Users().ByUserId(o.Shared.UPN).MailFolders().ByMailFolderId("inbox").Messages().Delta()
	items, link := deltaRound(t, c, delta)
	if len(items) != 9 {
		t.Fatalf("first round: %d", len(items))
	}
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	sub := models.NewSubscription()
	sub.SetChangeType(ptr("created,updated,deleted"))
	sub.SetNotificationUrl(&rc.URL)
	sub.SetLifecycleNotificationUrl(&lc.URL)
	sub.SetResource(ptr("users/" + o.Shared.UPN + "/mailFolders('inbox')/messages"))
	sub.SetExpirationDateTime(ptr(o.Sim.Clock().Now().Add(48 * time.Hour)))
	_, err := c.Subscriptions().Post(ctx, sub, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 403 || ge.Code != "ExtensionError" {
		t.Errorf("a delegated subscription on the shared mailbox: %v", err)
	}
	if err := o.Ctl.RevokeMailboxRights(ctx, o.Shared.UPN, o.Service.UPN, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	_, err = delta.WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 403 || ge.Code != "ErrorAccessDenied" {
		t.Errorf("after the revocation: %v", err)
	}
}

// Graph's global limit per app reaches the SDK as a 429 with Retry-After.
func TestSDKAppRequestLimit(t *testing.T) {
	o := simtest.StartOrg(t, graphsim.Options{AppRequests: 2, AppWindow: time.Minute})
	ctx := context.Background()
	c := appClient(t, o)
	for _, u := range []string{o.Ada.UPN, o.Shared.UPN} {
		if _, err := c.Users().ByUserId(u).Messages().Get(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.Users().ByUserId(o.Service.UPN).Messages().Get(ctx, nil)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 429 || !ge.Throttled() || ge.RetryAfter != 30*time.Second {
		t.Errorf("third request: %v (%+v)", err, ge)
	}
}
