package graphsim_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

type subscription struct {
	ID          string  `json:"id"`
	Expiration  string  `json:"expirationDateTime"`
	ClientState *string `json:"clientState"`
	Resource    string  `json:"resource"`
	ChangeType  string  `json:"changeType"`
	Lifecycle   *string `json:"lifecycleNotificationUrl"`
}

func subBody(resource, notify, lifecycle string, in time.Duration, now time.Time) map[string]any {
	b := map[string]any{"changeType": "created,updated,deleted", "notificationUrl": notify, "resource": resource,
		"expirationDateTime": now.Add(in).Format(time.RFC3339Nano), "clientState": "s3cret-state"}
	if lifecycle != "" {
		b["lifecycleNotificationUrl"] = lifecycle
	}
	return b
}

func TestSubscriptionRules(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{ValidationTimeout: 300 * time.Millisecond, PerMailbox: 2}})
	tok := f.token(t, "Mail.Read", "Mail.Read.Shared")
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := f.sim.Clock().Now()
	var sub subscription
	st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/mailFolders('Inbox')/messages", rc.URL, lc.URL, 3*24*time.Hour, now), &sub)
	if st != 201 || sub.ID == "" || *sub.ClientState != "s3cret-state" || rc.Handshakes() != 1 || lc.Handshakes() != 1 {
		t.Fatalf("create: %d %+v (handshakes %d/%d)", st, sub, rc.Handshakes(), lc.Handshakes())
	}
	// Shorter than 45 minutes is raised to 45 minutes.
	var short subscription
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", rc.URL, "", 10*time.Minute, now), &short)
	if exp, _ := time.Parse(time.RFC3339Nano, short.Expiration); exp.Sub(now) < 44*time.Minute {
		t.Errorf("short expiration not raised: %s", short.Expiration)
	}
	errs := []struct {
		name   string
		body   map[string]any
		status int
		code   string
		msg    string
	}{
		{"over the maximum lifetime", subBody("me/messages", rc.URL, lc.URL, 10081*time.Minute, now), 400, "ExtensionError", "Subscription expiration can only be 10080 minutes in the future."},
		{"unsupported resource", subBody("me/events", rc.URL, lc.URL, time.Hour, now), 400, "ExtensionError", "not supported"},
		{"bad change type", func() map[string]any {
			b := subBody("me/messages", rc.URL, lc.URL, time.Hour, now)
			b["changeType"] = "created,moved"
			return b
		}(), 400, "ValidationError", "changeType"},
		{"long clientState", func() map[string]any {
			b := subBody("me/messages", rc.URL, lc.URL, time.Hour, now)
			b["clientState"] = strings.Repeat("x", 129)
			return b
		}(), 400, "ValidationError", "128"},
		{"shared mailbox with a delegated token", subBody("users/support@contoso.example/messages", rc.URL, lc.URL, time.Hour, now), 403, "ExtensionError", "only the signed-in user's mailbox"},
		{"mailbox quota", subBody("me/messages", rc.URL, lc.URL, time.Hour, now), 403, "ExtensionError", "Maximum number of subscriptions has been reached"},
	}
	for _, tt := range errs {
		var ge graphErr
		if st, _ := f.graphDo(t, tok, "POST", "/subscriptions", tt.body, &ge); st != tt.status || ge.Error.Code != tt.code || !strings.Contains(ge.Error.Message, tt.msg) {
			t.Errorf("%s: %d %+v", tt.name, st, ge.Error)
		}
	}
	// Validation failures: wrong echo, error status, timeout.
	f.sim.Clock() // (same clock)
	if err := f.ctl.GrantMailboxRights(context.Background(), "support@contoso.example", "ada@contoso.example", graphsim.RightRead); err != nil {
		t.Fatal(err)
	}
	other := f.token(t, "Mail.Read") // a second app user token, same mailbox quota
	_ = other
	bad := simtest.NewReceiver(t)
	bad.SetBadEcho(true)
	var ge graphErr
	f.graphDo(t, tok, "DELETE", "/subscriptions/"+short.ID, nil, nil)
	if st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", bad.URL, "", 50*time.Minute, now), &ge); st != 400 || !strings.Contains(ge.Error.Message, "must exactly match validationToken") {
		t.Errorf("bad echo: %d %+v", st, ge.Error)
	}
	bad.SetBadEcho(false)
	bad.SetDelay(time.Second)
	if st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", bad.URL, "", 50*time.Minute, now), &ge); st != 400 || ge.Error.Code != "InvalidRequest" || !strings.Contains(ge.Error.Message, "timed out") {
		t.Errorf("slow handshake: %d %+v", st, ge.Error)
	}
	if st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", "http://127.0.0.1:9/nothing", "", 50*time.Minute, now), &ge); st != 400 || !strings.Contains(ge.Error.Message, "must respond with 200 OK") {
		t.Errorf("unreachable endpoint: %d %+v", st, ge.Error)
	}

	// Get, list, renew, reauthorize, delete.
	var got subscription
	if st, _ := f.graphDo(t, tok, "GET", "/subscriptions/"+sub.ID, nil, &got); st != 200 || got.ID != sub.ID {
		t.Errorf("get: %d", st)
	}
	var list struct{ Value []subscription }
	if f.graphDo(t, tok, "GET", "/subscriptions", nil, &list); len(list.Value) != 1 {
		t.Errorf("list: %+v", list.Value)
	}
	newExp := now.Add(6 * 24 * time.Hour).Format(time.RFC3339Nano)
	if st, _ := f.graphDo(t, tok, "PATCH", "/subscriptions/"+sub.ID, map[string]any{"expirationDateTime": newExp}, &got); st != 200 || !strings.HasPrefix(got.Expiration, newExp[:16]) {
		t.Errorf("renew: %d %s", st, got.Expiration)
	}
	if st, _ := f.graphDo(t, tok, "POST", "/subscriptions/"+sub.ID+"/reauthorize", nil, nil); st != 204 {
		t.Errorf("reauthorize: %d", st)
	}
	if st, _ := f.graphDo(t, tok, "DELETE", "/subscriptions/"+sub.ID, nil, nil); st != 204 {
		t.Errorf("delete: %d", st)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if st, _ := f.graphDo(t, tok, m, "/subscriptions/"+sub.ID, nil, &ge); st != 404 {
			t.Errorf("%s after delete: %d", m, st)
		}
	}
	if st, _ := f.graphDo(t, tok, "PATCH", "/subscriptions/"+sub.ID, map[string]any{"expirationDateTime": newExp}, &ge); st != 404 {
		t.Errorf("renew after delete: %d", st)
	}
}

func fastDelivery() graphsim.SubscriptionOptions {
	return graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond, RetryDelay: 30 * time.Millisecond}
}

func TestChangeNotifications(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: fastDelivery()})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	inbox, mailbox, lc := simtest.NewReceiver(t), simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := f.sim.Clock().Now()
	var folderSub, boxSub subscription
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/mailFolders('inbox')/messages", inbox.URL, lc.URL, 2*time.Hour, now), &folderSub, "Prefer", `IdType="ImmutableId"`)
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("/me/messages", mailbox.URL, lc.URL, 2*time.Hour, now), &boxSub)
	if folderSub.ID == "" || boxSub.ID == "" {
		t.Fatal("subscriptions not created")
	}
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "new"})
	items := inbox.WaitFor(t, 5*time.Second, "created", func(it []map[string]any) bool { return len(it) == 1 })
	n := items[0]
	rd := n["resourceData"].(map[string]any)
	if n["changeType"] != "created" || n["subscriptionId"] != folderSub.ID || n["clientState"] != "s3cret-state" || n["tenantId"] != f.tenant.ID || rd["id"] != ids[0] || rd["@odata.type"] != "#Microsoft.Graph.Message" {
		t.Errorf("notification = %v", n)
	}
	read := true
	if err := f.ctl.UpdateMessage(ctx, f.ada.UPN, ids[0], graphsim.MessageUpdate{IsRead: &read}); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.MoveMessage(ctx, f.ada.UPN, ids[0], "archive"); err != nil {
		t.Fatal(err)
	}
	items = inbox.WaitFor(t, 5*time.Second, "updated and deleted", func(it []map[string]any) bool { return len(it) == 3 })
	if items[1]["changeType"] != "updated" || items[2]["changeType"] != "deleted" {
		t.Errorf("folder subscription saw %v then %v", items[1]["changeType"], items[2]["changeType"])
	}
	// The mailbox subscription sees the move as an update, with REST IDs.
	boxItems := mailbox.WaitFor(t, 5*time.Second, "three changes", func(it []map[string]any) bool { return len(it) == 3 })
	if simtest.Count(boxItems, "changeType", "created") != 1 || simtest.Count(boxItems, "changeType", "updated") != 2 {
		t.Errorf("mailbox subscription: %v", boxItems)
	}
	if boxItems[0]["resourceData"].(map[string]any)["id"] == ids[0] {
		t.Error("a subscription created without ImmutableId got immutable IDs")
	}
	// Bursts are batched: 40 new messages arrive in fewer posts.
	before := inbox.Posts()
	inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, 40)...)
	inbox.WaitFor(t, 5*time.Second, "40 more", func(it []map[string]any) bool { return len(it) == 43 })
	if posts := inbox.Posts() - before; posts >= 40 {
		t.Errorf("40 notifications took %d posts", posts)
	}
	// An expired subscription stops delivering.
	f.sim.AdvanceClock(3 * time.Hour)
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "too late"})
	time.Sleep(200 * time.Millisecond)
	if len(inbox.Items()) != 43 {
		t.Errorf("expired subscription delivered: %d", len(inbox.Items()))
	}
}

func TestSlowReceiverRetriedThenDropped(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{
		BatchWindow: 2 * time.Millisecond, BatchMax: 1, RetryDelay: 20 * time.Millisecond, DeliveryTimeout: 400 * time.Millisecond,
		SlowAfter: 100 * time.Millisecond, SlowSample: 6, SlowWindow: time.Minute, ThrottleDelay: 200 * time.Millisecond, Retention: 5 * time.Second,
	}})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	var sub subscription
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", rc.URL, lc.URL, 2*time.Hour, f.sim.Clock().Now()), &sub)
	// A failing receiver is retried until it answers.
	rc.FailNext(2)
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "retry me"})
	rc.WaitFor(t, 5*time.Second, "the retried notification", func(it []map[string]any) bool { return len(it) == 1 })
	c, _ := f.ctl.Counters(ctx)
	if c["notifications.retried"] < 2 || rc.Posts() != 3 {
		t.Errorf("retries: %v, posts %d", c["notifications.retried"], rc.Posts())
	}
	// A slow receiver: past the sample, its share of slow answers gets it
	// dropped, and the app hears of it through a missed event.
	rc.SetDelay(150 * time.Millisecond)
	for range 8 {
		inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "slow"})
		time.Sleep(30 * time.Millisecond)
	}
	// The answers that filled the sample were slow but accepted; what
	// arrives once the endpoint is dropping is dropped (how many of the
	// eight came before that depends on timing).
	rc.WaitFor(t, 10*time.Second, "the slow deliveries", func(it []map[string]any) bool { return len(it) >= 1+3 })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		eps, _ := f.ctl.Endpoints(ctx)
		if i := slices.IndexFunc(eps, func(ep graphsim.EndpointState) bool { return ep.URL == rc.URL && ep.Mode == "dropping" }); i >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow endpoint is not dropping: %+v", eps)
		}
	}
	inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, 3)...)
	lc.WaitFor(t, 10*time.Second, "a missed event", func(it []map[string]any) bool { return simtest.Count(it, "lifecycleEvent", "missed") >= 1 })
	eps, _ := f.ctl.Endpoints(ctx)
	dropping := false
	for _, ep := range eps {
		if ep.URL == rc.URL && ep.Mode == "dropping" {
			dropping = true
		}
	}
	c, _ = f.ctl.Counters(ctx)
	if !dropping || c["notifications.dropped"] == 0 {
		t.Errorf("endpoints %+v, dropped %d", eps, c["notifications.dropped"])
	}
}

func TestLifecycleEvents(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: fastDelivery()})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	now := f.sim.Clock().Now()
	var a, b subscription
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", rc.URL, lc.URL, 3*24*time.Hour, now), &a)
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/mailFolders/inbox/messages", rc.URL, lc.URL, 3*24*time.Hour, now), &b)

	if err := f.ctl.SendLifecycle(ctx, a.ID, "missed"); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.RemoveSubscription(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	items := lc.WaitFor(t, 5*time.Second, "missed and subscriptionRemoved", func(it []map[string]any) bool { return len(it) == 2 })
	for _, it := range items {
		if it["clientState"] != "s3cret-state" || it["subscriptionExpirationDateTime"] == nil {
			t.Errorf("lifecycle item = %v", it)
		}
	}
	var ge graphErr
	if st, _ := f.graphDo(t, tok, "GET", "/subscriptions/"+b.ID, nil, &ge); st != 404 {
		t.Errorf("removed subscription: %d", st)
	}
	// Nearing expiry: reauthorizationRequired.
	f.sim.AdvanceClock(3*24*time.Hour - 30*time.Minute)
	lc.WaitFor(t, 5*time.Second, "reauthorizationRequired before expiry", func(it []map[string]any) bool {
		return simtest.Count(it, "lifecycleEvent", "reauthorizationRequired") == 1
	})
	// Renewing clears it; a revocation asks again and holds notifications
	// until the app reauthorizes, then reports them missed.
	tok = f.token(t, "Mail.Read")
	f.graphDo(t, tok, "PATCH", "/subscriptions/"+a.ID, map[string]any{"expirationDateTime": f.sim.Clock().Now().Add(48 * time.Hour).Format(time.RFC3339Nano)}, nil)
	if err := f.ctl.Revoke(ctx, f.ada.UPN, graphsim.RevokeSignInSessions); err != nil {
		t.Fatal(err)
	}
	lc.WaitFor(t, 5*time.Second, "reauthorizationRequired after revocation", func(it []map[string]any) bool {
		return simtest.Count(it, "lifecycleEvent", "reauthorizationRequired") == 2
	})
	got := len(rc.Items())
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "while revoked"})
	time.Sleep(150 * time.Millisecond)
	if len(rc.Items()) != got {
		t.Error("a subscription needing reauthorization still delivered")
	}
	tok = f.token(t, "Mail.Read") // the user signs in again
	if st, _ := f.graphDo(t, tok, "POST", "/subscriptions/"+a.ID+"/reauthorize", nil, nil); st != 204 {
		t.Fatalf("reauthorize: %d", st)
	}
	lc.WaitFor(t, 5*time.Second, "missed after reauthorization", func(it []map[string]any) bool { return simtest.Count(it, "lifecycleEvent", "missed") == 2 })
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "after"})
	rc.WaitFor(t, 5*time.Second, "delivery resumed", func(it []map[string]any) bool { return len(it) == got+1 })
	// No lifecycle URL: nothing to deliver to, and no crash.
	var plain subscription
	f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", rc.URL, "", 50*time.Minute, f.sim.Clock().Now()), &plain)
	if err := f.ctl.SendLifecycle(ctx, plain.ID, "missed"); err != nil {
		t.Fatal(err)
	}
	_ = http.StatusOK
}

func TestAppSubscriptionAndDeliveryFaults(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond, RetryDelay: 20 * time.Millisecond}})
	ctx := context.Background()
	if err := f.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: f.tenant.ID, ClientID: f.app.ClientID, Roles: []string{"Mail.Read"}}); err != nil {
		t.Fatal(err)
	}
	_, _, body := postToken(t, f.sim.URL()+"/"+f.tenant.ID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}, f.app.ClientID, f.app.Secrets[0].Value)
	app := body["access_token"].(string)
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	var sub subscription
	if st, _ := f.graphDo(t, app, "POST", "/subscriptions", subBody("users/support@contoso.example/messages", rc.URL, lc.URL, 24*time.Hour, f.sim.Clock().Now()), &sub); st != 201 {
		t.Fatalf("app subscription on a shared mailbox: %d", st)
	}
	subs, err := f.ctl.Subscriptions(ctx)
	if err != nil || len(subs) != 1 || subs[0].UserID != f.shared.ID || subs[0].Expiration.IsZero() {
		t.Fatalf("control list: %+v %v", subs, err)
	}
	// Duplicated notifications.
	if err := f.ctl.SetNotificationFault(ctx, graphsim.NotificationFault{Duplicate: 1}); err != nil {
		t.Fatal(err)
	}
	inject(t, f, "support@contoso.example", graphsim.MessageSpec{Subject: "twice"})
	rc.WaitFor(t, 5*time.Second, "a duplicate", func(it []map[string]any) bool { return len(it) == 2 })
	// Delayed notifications.
	f.ctl.SetNotificationFault(ctx, graphsim.NotificationFault{Delay: 300 * time.Millisecond})
	start := time.Now()
	inject(t, f, "support@contoso.example", graphsim.MessageSpec{Subject: "late"})
	rc.WaitFor(t, 5*time.Second, "the delayed one", func(it []map[string]any) bool { return len(it) == 3 })
	if time.Since(start) < 300*time.Millisecond {
		t.Error("the notification was not delayed")
	}
	// Dropped notifications are reported missed.
	f.ctl.SetNotificationFault(ctx, graphsim.NotificationFault{Drop: 1})
	inject(t, f, "support@contoso.example", graphsim.MessageSpec{Subject: "lost"})
	lc.WaitFor(t, 5*time.Second, "missed for a dropped notification", func(it []map[string]any) bool { return simtest.Count(it, "lifecycleEvent", "missed") == 1 })
	f.ctl.SetNotificationFault(ctx, graphsim.NotificationFault{})
	// An unreachable receiver is retried, and gets it once reachable again.
	if err := f.ctl.SetEndpointReachable(ctx, rc.URL, false); err != nil {
		t.Fatal(err)
	}
	inject(t, f, "support@contoso.example", graphsim.MessageSpec{Subject: "eventually"})
	time.Sleep(150 * time.Millisecond)
	if len(rc.Items()) != 3 {
		t.Errorf("delivered to an unreachable endpoint")
	}
	f.ctl.SetEndpointReachable(ctx, rc.URL, true)
	rc.WaitFor(t, 5*time.Second, "the retried notification", func(it []map[string]any) bool { return len(it) == 4 })
	// The sender books a delivery when the answer is back: poll briefly.
	var c map[string]int64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, _ = f.ctl.Counters(ctx); c["notifications.delivered"] >= 4 {
			break
		}
	}
	if c["notifications.retried"] == 0 || c["notifications.dropped"] == 0 || c["notifications.delivered"] < 4 {
		t.Errorf("counters = %v", c)
	}
}

// TestNotificationURLsMustBeHTTPS: Graph posts only to https and refuses
// http notification and lifecycle URLs (docs/graph.md#creating-a-subscription);
// graphsim does the same unless told to accept http.
func TestNotificationURLsMustBeHTTPS(t *testing.T) {
	st := simtest.StartStrict(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{ValidationTimeout: time.Second}})
	f := &fixture{Tenant: st, sim: st.Sim, ctl: st.Ctl, tenant: st.Tenant, app: st.App, ada: st.Ada, admin: st.Admin, shared: st.Shared}
	tok := f.token(t, "Mail.Read")
	rc := simtest.NewReceiver(t) // plain http on loopback
	now := f.sim.Clock().Now()
	tests := []struct {
		name, notify, lifecycle string
		code, msg               string
	}{
		{"http notification URL", rc.URL, "", "InvalidRequest", "NotificationUrl scheme='http' is not supported."},
		{"http lifecycle URL", "https://127.0.0.1:9/notify", rc.URL, "InvalidRequest", "LifecycleNotificationUrl scheme='http' is not supported."},
		{"not an absolute URL", "https:////hooks.example/notify", "", "InvalidRequest", "Invalid notification url='https:////hooks.example/notify'."},
		// https passes the scheme rule; nothing answers the handshake there.
		{"https", "https://127.0.0.1:9/notify", "", "ValidationError", "Subscription validation request failed."},
	}
	for _, tt := range tests {
		var ge graphErr
		st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", tt.notify, tt.lifecycle, time.Hour, now), &ge)
		if st != 400 || ge.Error.Code != tt.code || !strings.HasPrefix(ge.Error.Message, tt.msg) {
			t.Errorf("%s: %d %+v", tt.name, st, ge.Error)
		}
	}
	if rc.Handshakes() != 0 {
		t.Errorf("an http URL was validated (%d handshakes)", rc.Handshakes())
	}
}

// TestValidationAnswerMustBeTextPlain: the handshake answer must be 200,
// text/plain, with the decoded token, within 10 seconds
// (docs/graph.md#validation-handshake).
func TestValidationAnswerMustBeTextPlain(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{ValidationTimeout: 500 * time.Millisecond}})
	tok := f.token(t, "Mail.Read")
	rc := simtest.NewReceiver(t)
	now := f.sim.Clock().Now()
	tests := []struct {
		contentType string
		delay       time.Duration
		status      int
		code        string
	}{
		{"text/plain", 0, 201, ""},
		{"text/plain; charset=utf-8", 0, 201, ""},
		{"Text/Plain", 0, 201, ""},
		{"application/json", 0, 400, "ValidationError"},
		{"text/html; charset=utf-8", 0, 400, "ValidationError"},
		{"text/plainish", 0, 400, "ValidationError"},
		{"text/plain", time.Second, 400, "InvalidRequest"}, // over the budget
	}
	for _, tt := range tests {
		rc.SetEchoType(tt.contentType)
		rc.SetDelay(tt.delay)
		var got struct {
			subscription
			graphErr
		}
		st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", rc.URL, "", 50*time.Minute, now), &got)
		if st != tt.status || got.Error.Code != tt.code || (st == 400 && !strings.HasPrefix(got.Error.Message, "Subscription validation request")) {
			t.Errorf("answer %q after %s: %d %+v", tt.contentType, tt.delay, st, got.Error)
		}
		if st == 201 {
			f.graphDo(t, tok, "DELETE", "/subscriptions/"+got.ID, nil, nil)
		}
	}
}

// TestMailSubscriptionLifetime: an Outlook message subscription may live
// the documented 10,080 minutes, with or without a lifecycle URL (Graph
// requires one only of Teams resources living over an hour); the maximum
// stays a setting (docs/graph.md#subscription-lifetime).
func TestMailSubscriptionLifetime(t *testing.T) {
	for _, tt := range []struct {
		max    time.Duration
		ask    time.Duration
		status int
	}{
		{0, 10080 * time.Minute, 201},
		{0, 10080*time.Minute + time.Minute, 400},
		{4230 * time.Minute, 4230 * time.Minute, 201},
		{4230 * time.Minute, 4231 * time.Minute, 400},
	} {
		f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{MaxLifetime: tt.max}})
		tok := f.token(t, "Mail.Read")
		rc := simtest.NewReceiver(t)
		now := f.sim.Clock().Now()
		var got struct {
			subscription
			graphErr
		}
		// No lifecycle URL, however long the subscription lives.
		st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/mailFolders('inbox')/messages", rc.URL, "", tt.ask-time.Second, now), &got)
		if st != tt.status {
			t.Errorf("max %s, asking %s: %d %+v", tt.max, tt.ask, st, got.Error)
			continue
		}
		if st == 201 && (got.Lifecycle != nil || got.Expiration == "") {
			t.Errorf("max %s: %+v", tt.max, got.subscription)
		}
	}
}

// TestNewMailNotHeldBehindRedeliveries: a receiver out of reach for a
// while leaves hundreds of redeliveries scheduled for later; once it
// answers again, new mail is notified at once, not behind them, and the
// redeliveries follow on their own schedule (docs/graph.md#delivery-and-retries).
func TestNewMailNotHeldBehindRedeliveries(t *testing.T) {
	const retryDelay = 5 * time.Second
	f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{
		BatchWindow: 5 * time.Millisecond, RetryDelay: retryDelay, ThrottleDelay: time.Minute}})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	var sub subscription
	if st, _ := f.graphDo(t, tok, "POST", "/subscriptions", subBody("me/messages", rc.URL, lc.URL, 2*time.Hour, f.sim.Clock().Now()), &sub, "Prefer", `IdType="ImmutableId"`); st != 201 {
		t.Fatalf("subscribe: %d", st)
	}
	if err := f.ctl.SetEndpointReachable(ctx, rc.URL, false); err != nil {
		t.Fatal(err)
	}
	const backlog = 600
	inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, backlog)...)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := f.ctl.Counters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c["notifications.retried"] >= backlog {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backlog did not build: %v", c)
		}
	}
	if err := f.ctl.SetEndpointReachable(ctx, rc.URL, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "urgent"})
	arrived := func() bool {
		for _, it := range rc.Items() {
			if it["resourceData"].(map[string]any)["id"] == ids[0] {
				return true
			}
		}
		return false
	}
	for !arrived() && time.Since(start) < 3*retryDelay {
		time.Sleep(5 * time.Millisecond)
	}
	waited := time.Since(start)
	if !arrived() || waited > retryDelay/2 {
		t.Fatalf("new mail notified: %v, after %s, with %d of %d redeliveries before it", arrived(), waited, len(rc.Items())-1, backlog)
	}
	if n := len(rc.Items()); n > 1 {
		t.Errorf("%d redeliveries came before their time", n-1)
	}
	for deadline := time.Now().Add(6 * retryDelay); len(rc.Items()) < backlog+1; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d redeliveries arrived", len(rc.Items())-1, backlog)
		}
	}
	eps, err := f.ctl.Endpoints(ctx)
	if err != nil || len(eps) == 0 {
		t.Fatalf("endpoints: %v %v", eps, err)
	}
	for _, ep := range eps {
		if ep.Queued != 0 || ep.Retrying != 0 || ep.Mode != "" {
			t.Errorf("endpoint after the backlog: %+v", ep)
		}
	}
}

// TestSubscriptionAPIThrottledPerAppAndTenant: the subscription API takes
// a number of writes (POST, PATCH, DELETE) per window from one app in one
// tenant (docs/graph.md#creating-a-subscription: 1,000 per 20 seconds);
// over it, 429 TooManyRequests with Retry-After and nothing is done, reads
// still pass, and the budget comes back with time.
func TestSubscriptionAPIThrottledPerAppAndTenant(t *testing.T) {
	f := newFixture(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{Writes: 3, Window: 20 * time.Second}})
	ctx := context.Background()
	if err := f.ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: f.tenant.ID, ClientID: f.app.ClientID, Roles: []string{"Mail.Read"}}); err != nil {
		t.Fatal(err)
	}
	_, _, body := postToken(t, f.sim.URL()+"/"+f.tenant.ID+"/oauth2/v2.0/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}, f.app.ClientID, f.app.Secrets[0].Value)
	app := body["access_token"].(string)
	rc, lc := simtest.NewReceiver(t), simtest.NewReceiver(t)
	create := func(user string) (int, http.Header) {
		var sub subscription
		return f.graphDo(t, app, "POST", "/subscriptions", subBody("users/"+user+"/messages", rc.URL, lc.URL, 24*time.Hour, f.sim.Clock().Now()), &sub)
	}
	for _, u := range []string{"support@contoso.example", "ada@contoso.example", "support@contoso.example"} {
		if st, _ := create(u); st != 201 {
			t.Fatalf("subscription on %s within the budget: %d", u, st)
		}
	}
	st, h := create("ada@contoso.example")
	if st != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("a write over the budget: %d, Retry-After %q", st, h.Get("Retry-After"))
	}
	if subs, _ := f.ctl.Subscriptions(ctx); len(subs) != 3 {
		t.Errorf("%d subscriptions after a throttled create, want 3", len(subs))
	}
	if st, _ := f.graphGet(t, app, "/subscriptions", nil); st != 200 {
		t.Errorf("a read while writes are throttled: %d", st)
	}
	f.sim.Clock().Advance(21 * time.Second)
	if st, _ := create("ada@contoso.example"); st != 201 {
		t.Errorf("after the window: %d", st)
	}
}
