package graphsim_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

type message struct {
	ID        string         `json:"id"`
	ETag      string         `json:"@odata.etag"`
	Type      string         `json:"@odata.type"`
	Subject   *string        `json:"subject"`
	Received  string         `json:"receivedDateTime"`
	ParentID  string         `json:"parentFolderId"`
	IsRead    *bool          `json:"isRead"`
	Body      map[string]any `json:"body"`
	Removed   map[string]any `json:"@removed"`
	ChangeKey string         `json:"changeKey"`
}

type page struct {
	Value     []message `json:"value"`
	NextLink  string    `json:"@odata.nextLink"`
	DeltaLink string    `json:"@odata.deltaLink"`
}

func (f *fixture) token(t *testing.T, scopes ...string) string {
	t.Helper()
	return f.signIn(t, "ada@contoso.example", append([]string{"offline_access"}, scopes...)...).AccessToken
}

func inject(t *testing.T, f *fixture, user string, specs ...graphsim.MessageSpec) []string {
	t.Helper()
	ids, err := f.ctl.InjectMessages(context.Background(), user, specs...)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestFoldersAndUsers(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read", "User.Read", "User.ReadBasic.All")
	projects, err := f.ctl.CreateFolder(ctx, f.ada.UPN, "inbox", "Projects")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ctl.CreateFolder(ctx, f.ada.UPN, projects, "2026"); err != nil {
		t.Fatal(err)
	}
	var top struct {
		Value []struct {
			ID, DisplayName, ParentFolderID string
			ChildFolderCount                int
		} `json:"value"`
		NextLink string `json:"@odata.nextLink"`
	}
	if st, _ := f.graphGet(t, tok, "/me/mailFolders?$top=3", &top); st != 200 || len(top.Value) != 3 || top.NextLink == "" {
		t.Fatalf("mailFolders page: %d %+v", st, top)
	}
	var inbox map[string]any
	for _, p := range []string{"/me/mailFolders/inbox", "/me/mailFolders('Inbox')", "/users/" + f.ada.ID + "/mailFolders/INBOX", "/users('ada@contoso.example')/mailFolders('inbox')"} {
		if st, _ := f.graphGet(t, tok, p, &inbox); st != 200 || inbox["displayName"] != "Inbox" || inbox["childFolderCount"] != float64(1) {
			t.Errorf("%s: %d %v", p, st, inbox)
		}
	}
	var kids page
	if st, _ := f.graphGet(t, tok, "/me/mailFolders/inbox/childFolders/"+url.PathEscape(projects)+"/childFolders", &kids); st != 200 || len(kids.Value) != 1 {
		t.Errorf("nested childFolders: %d %+v", st, kids)
	}
	var fd struct {
		Value     []map[string]any `json:"value"`
		DeltaLink string           `json:"@odata.deltaLink"`
	}
	if st, _ := f.graphGet(t, tok, "/me/mailFolders/delta()", &fd); st != 200 || len(fd.Value) < 10 || fd.DeltaLink == "" {
		t.Errorf("folder delta: %d %d", st, len(fd.Value))
	}
	var again struct{ Value []map[string]any }
	if _, err := f.ctl.CreateFolder(ctx, f.ada.UPN, "", "Receipts"); err != nil {
		t.Fatal(err)
	}
	if f.graphGet(t, tok, fd.DeltaLink, &again); len(again.Value) != 1 || again.Value[0]["displayName"] != "Receipts" {
		t.Errorf("folder delta round 2: %v", again.Value)
	}

	var users struct {
		Value    []map[string]any `json:"value"`
		NextLink string           `json:"@odata.nextLink"`
	}
	if st, _ := f.graphGet(t, tok, "/users?$top=2", &users); st != 200 || len(users.Value) != 2 || !strings.Contains(users.NextLink, "skiptoken=") {
		t.Fatalf("users page: %d %+v", st, users)
	}
	var rest struct{ Value []map[string]any }
	f.graphGet(t, tok, users.NextLink, &rest)
	if len(rest.Value) != 1 {
		t.Errorf("users page 2 = %v", rest.Value)
	}
	var ge graphErr
	tests := []struct {
		path, code string
		status     int
	}{
		{"/users/nobody@contoso.example", "Request_ResourceNotFound", 404},
		{"/users/me-token-to-replace/messages", "ErrorInvalidUser", 404},
		{"/users?$skip=1", "BadRequest", 400},
		{"/me/mailFolders/nope", "ErrorItemNotFound", 404},
		{"/me/messages/delta", "BadRequest", 400},
		{"/me/calendars", "ResourceNotFound", 404},
	}
	for _, tt := range tests {
		ge = graphErr{}
		if st, _ := f.graphGet(t, tok, tt.path, &ge); st != tt.status || ge.Error.Code != tt.code || ge.Error.Message == "" || ge.Error.InnerError.RequestID == "" {
			t.Errorf("%s: %d %+v", tt.path, st, ge)
		}
	}
}

func TestMessageListing(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	base := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	var specs []graphsim.MessageSpec
	for i := range 25 {
		specs = append(specs, graphsim.MessageSpec{Subject: "m" + string(rune('a'+i)), Received: base.Add(time.Duration(i) * time.Hour), IsRead: i%2 == 0,
			From: graphsim.Recipient{Name: "X", Address: "x@fabrikam.example"}, Body: "<p>hello <b>world</b></p>"})
	}
	inject(t, f, f.ada.UPN, specs...)

	var p page
	st, _ := f.graphGet(t, tok, "/me/mailFolders/inbox/messages", &p)
	if st != 200 || len(p.Value) != 10 || !strings.Contains(p.NextLink, "%24skip=10") && !strings.Contains(p.NextLink, "$skip=10") {
		t.Fatalf("default page: %d %d %s", st, len(p.Value), p.NextLink)
	}
	if *p.Value[0].Subject != "my" || p.Value[0].ETag == "" {
		t.Errorf("default order is newest first: %v", *p.Value[0].Subject)
	}
	var all []message
	for link := "/me/messages?$top=7"; link != ""; {
		var pg page
		f.graphGet(t, tok, link, &pg)
		all = append(all, pg.Value...)
		link = pg.NextLink
	}
	if len(all) != 25 {
		t.Errorf("paged %d messages, want 25", len(all))
	}
	var sel struct{ Value []map[string]any }
	f.graphGet(t, tok, "/me/messages?$select=subject,isRead&$top=1", &sel)
	if got := mapKeys(sel.Value[0]); !slices.Equal(got, []string{"@odata.etag", "id", "isRead", "subject"}) {
		t.Errorf("$select keys = %v", got)
	}
	var filtered page
	f.graphGet(t, tok, "/me/messages?$top=100&$filter=receivedDateTime ge 2026-10-01T20:00:00Z and isRead eq false&$orderby=receivedDateTime asc", &filtered)
	if len(filtered.Value) != 8 || *filtered.Value[0].Subject != "mj" {
		t.Errorf("filtered = %d first %v", len(filtered.Value), filtered.Value)
	}
	var text message
	f.graphGet(t, tok, "/me/messages/"+url.PathEscape(all[0].ID), &text, "Prefer", `outlook.body-content-type="text"`)
	if text.Body["contentType"] != "text" || text.Body["content"] != "hello  world" && text.Body["content"] != "hello world" {
		t.Errorf("text body = %v", text.Body)
	}
	errs := []struct{ q, code string }{
		{"$filter=isRead eq false&$orderby=receivedDateTime desc", "InefficientFilter"},
		{"$top=0", "ErrorInvalidParameter"},
		{"$top=1001", "ErrorInvalidParameter"},
		{"$select=nonsense", "BadRequest"},
		{"$filter=flavour eq 'x'", "BadRequest"},
		{"$filter=receivedDateTime ge yesterday", "BadRequest"},
	}
	for _, e := range errs {
		var ge graphErr
		if st, _ := f.graphGet(t, tok, "/me/messages?"+e.q, &ge); st != 400 || ge.Error.Code != e.code {
			t.Errorf("%s: %d %+v", e.q, st, ge.Error)
		}
	}
}

func mapKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestImmutableIDsSurviveMoves(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "keep me"})
	var restBefore, immBefore message
	f.graphGet(t, tok, "/me/messages/"+url.PathEscape(ids[0]), &restBefore)
	f.graphGet(t, tok, "/me/messages/"+url.PathEscape(ids[0]), &immBefore, "Prefer", `IdType="ImmutableId"`)
	if immBefore.ID != ids[0] || restBefore.ID == ids[0] {
		t.Fatalf("ids: rest %s immutable %s injected %s", restBefore.ID, immBefore.ID, ids[0])
	}
	if err := f.ctl.MoveMessage(context.Background(), f.ada.UPN, ids[0], "archive"); err != nil {
		t.Fatal(err)
	}
	var immAfter, restAfter message
	if st, _ := f.graphGet(t, tok, "/me/messages/"+url.PathEscape(ids[0]), &immAfter, "Prefer", `IdType="ImmutableId"`); st != 200 || immAfter.ID != ids[0] {
		t.Errorf("immutable ID after move: %d %s", st, immAfter.ID)
	}
	f.graphGet(t, tok, "/me/messages/"+url.PathEscape(ids[0]), &restAfter)
	if restAfter.ID == restBefore.ID {
		t.Error("REST ID did not change on move")
	}
	var ge graphErr
	if st, _ := f.graphGet(t, tok, "/me/messages/"+url.PathEscape(restBefore.ID), &ge); st != 404 || ge.Error.Code != "ErrorItemNotFound" {
		t.Errorf("old REST ID after move: %d %+v", st, ge)
	}
}

// deltaRound follows nextLinks to the deltaLink, returning every item.
func deltaRound(t *testing.T, f *fixture, tok, start string, pageSize string) ([]message, string, int) {
	t.Helper()
	var items []message
	pages := 0
	link := start
	for {
		var pg page
		st, _ := f.graphGet(t, tok, link, &pg, "Prefer", `IdType="ImmutableId"`, "Prefer", "odata.maxpagesize="+pageSize)
		if st != 200 {
			t.Fatalf("delta page %s: %d", link, st)
		}
		pages++
		items = append(items, pg.Value...)
		if pg.DeltaLink != "" {
			if pg.NextLink != "" {
				t.Fatal("a page with both nextLink and deltaLink")
			}
			return items, pg.DeltaLink, pages
		}
		if pg.NextLink == "" {
			t.Fatal("a page with neither nextLink nor deltaLink")
		}
		link = pg.NextLink
	}
}

func TestMessageDelta(t *testing.T) {
	f := newFixture(t, graphsim.Options{DeltaTokenMaxAge: 48 * time.Hour})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	ids := inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, 7)...)
	items, deltaLink, pages := deltaRound(t, f, tok, "/me/mailFolders('inbox')/messages/delta()", "3")
	if len(items) != 7 || pages != 3 || items[0].Type != "#microsoft.graph.message" {
		t.Fatalf("initial round: %d items in %d pages", len(items), pages)
	}
	if !strings.HasPrefix(deltaLink, f.sim.URL()+"/v1.0/") || !strings.Contains(deltaLink, "$deltatoken=") {
		t.Errorf("deltaLink = %s", deltaLink)
	}
	// Changes: one new, one read, one archived, one deleted for good.
	newIDs := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "late"})
	read := true
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.ctl.UpdateMessage(ctx, f.ada.UPN, ids[1], graphsim.MessageUpdate{IsRead: &read}))
	must(f.ctl.MoveMessage(ctx, f.ada.UPN, ids[2], "archive"))
	must(f.ctl.DeleteMessage(ctx, f.ada.UPN, ids[3]))
	items, deltaLink2, _ := deltaRound(t, f, tok, deltaLink, "10")
	got := map[string]string{}
	for _, it := range items {
		kind := "changed"
		if it.Removed != nil {
			kind = "removed"
		}
		got[it.ID] = kind
	}
	want := map[string]string{newIDs[0]: "changed", ids[1]: "changed", ids[2]: "removed", ids[3]: "removed"}
	if len(got) != len(want) {
		t.Errorf("round 2 = %v, want %v", got, want)
	}
	for id, k := range want {
		if got[id] != k {
			t.Errorf("round 2: %s is %q, want %q", id, got[id], k)
		}
	}
	// The archive folder's own delta sees the moved message.
	arch, _, _ := deltaRound(t, f, tok, "/me/mailFolders/archive/messages/microsoft.graph.delta", "10")
	if len(arch) != 1 || arch[0].ID != ids[2] {
		t.Errorf("archive delta = %v", arch)
	}
	// Nothing changed: an empty round.
	if items, _, _ := deltaRound(t, f, tok, deltaLink2, "10"); len(items) != 0 {
		t.Errorf("quiet round returned %d items", len(items))
	}
	// $top caps the whole round: 2 items, then an empty page with a deltaLink.
	var p1, p2 page
	f.graphGet(t, tok, "/me/mailFolders/inbox/messages/delta?$top=2", &p1, "Prefer", "odata.maxpagesize=10")
	f.graphGet(t, tok, p1.NextLink, &p2)
	if len(p1.Value) != 2 || p1.NextLink == "" || len(p2.Value) != 0 || p2.DeltaLink == "" {
		t.Errorf("$top round: %d %q / %d %q", len(p1.Value), p1.NextLink, len(p2.Value), p2.DeltaLink)
	}
	// Expiry by age, then by the control API: 410 SyncStateNotFound.
	f.sim.AdvanceClock(49 * time.Hour)
	tok = f.token(t, "Mail.Read")
	var ge graphErr
	st, hdr := f.graphGet(t, tok, deltaLink2, &ge)
	if st != 410 || ge.Error.Code != "SyncStateNotFound" || hdr.Get("Location") == "" {
		t.Errorf("aged token: %d %+v", st, ge)
	}
	_, fresh, _ := deltaRound(t, f, tok, "/me/mailFolders/inbox/messages/delta", "50")
	must(f.ctl.ExpireDeltaTokens(ctx, f.ada.UPN))
	if st, _ := f.graphGet(t, tok, fresh, &ge); st != 410 {
		t.Errorf("expired token: %d", st)
	}
	for _, q := range []string{"$filter=isRead eq false", "$orderby=subject", "$filter=receivedDateTime le 2026-01-01T00:00:00Z"} {
		if st, _ := f.graphGet(t, tok, "/me/mailFolders/inbox/messages/delta?"+q, &ge); st != 400 {
			t.Errorf("delta with %s: %d", q, st)
		}
	}
}

// TestDeltaNeverLosesConcurrentChanges changes messages while a round is
// being paged: every message must be seen with its final state in this
// round or the next.
func TestDeltaNeverLosesConcurrentChanges(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	ids := inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, 30)...)
	seen := map[string]bool{}
	var pg page
	f.graphGet(t, tok, "/me/mailFolders/inbox/messages/delta", &pg, "Prefer", `IdType="ImmutableId"`, "Prefer", "odata.maxpagesize=5")
	for _, m := range pg.Value {
		seen[m.ID] = true
	}
	// While paging: re-touch early ones, add new ones.
	read := true
	for _, id := range ids[:10] {
		if err := f.ctl.UpdateMessage(ctx, f.ada.UPN, id, graphsim.MessageUpdate{IsRead: &read}); err != nil {
			t.Fatal(err)
		}
	}
	late := inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, 5)...)
	items, link, _ := deltaRound(t, f, tok, pg.NextLink, "5")
	for _, m := range items {
		seen[m.ID] = true
	}
	items, _, _ = deltaRound(t, f, tok, link, "5")
	for _, m := range items {
		seen[m.ID] = true
	}
	for _, id := range append(ids, late...) {
		if !seen[id] {
			t.Errorf("message %s never delivered", id)
		}
	}
}

func TestAttachments(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "with file", Attachments: []graphsim.AttachmentSpec{{Name: "a.txt", ContentType: "text/plain", Content: []byte("hello attachment")}}})
	var list struct {
		Value []map[string]any `json:"value"`
	}
	path := "/me/messages/" + url.PathEscape(ids[0]) + "/attachments"
	if st, _ := f.graphGet(t, tok, path, &list); st != 200 || len(list.Value) != 1 || list.Value[0]["@odata.type"] != "#microsoft.graph.fileAttachment" || list.Value[0]["contentBytes"] != "aGVsbG8gYXR0YWNobWVudA==" {
		t.Fatalf("attachments: %d %v", st, list.Value)
	}
	req, _ := http.NewRequest("GET", f.sim.GraphURL()+path+"/"+url.PathEscape(list.Value[0]["id"].(string))+"/$value", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := make([]byte, 100)
	n, _ := resp.Body.Read(b)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain" || string(b[:n]) != "hello attachment" {
		t.Errorf("$value: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), b[:n])
	}
	basic := f.token(t, "Mail.ReadBasic")
	var ge graphErr
	if st, _ := f.graphGet(t, basic, path, &ge); st != 403 {
		t.Errorf("attachments with Mail.ReadBasic: %d", st)
	}
	var m map[string]any
	f.graphGet(t, basic, "/me/messages/"+url.PathEscape(ids[0]), &m)
	if _, ok := m["body"]; ok || m["subject"] != "with file" {
		t.Errorf("Mail.ReadBasic message = %v", m)
	}
}

func TestAuthenticationAndAccess(t *testing.T) {
	f := newFixture(t, graphsim.Options{AccessTokenLifetime: func() time.Duration { return time.Hour }})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read", "Mail.Read.Shared")
	tests := []struct {
		name, token, msg string
	}{
		{"no token", "", "Access token is empty."},
		{"garbage", "not-a-jwt", "IDX14100: JWT is not well formed, there are no dots (.)."},
		{"tampered", tok[:len(tok)-4] + "AAAA", "Signature validation failed."},
	}
	for _, tt := range tests {
		var ge graphErr
		st, hdr := f.graphGet(t, tt.token, "/me/messages", &ge)
		if st != 401 || ge.Error.Code != "InvalidAuthenticationToken" || ge.Error.Message != tt.msg || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer realm=") {
			t.Errorf("%s: %d %+v", tt.name, st, ge)
		}
	}
	// Shared mailbox: needs the .Shared scope and a mailbox right.
	var ge graphErr
	if st, _ := f.graphGet(t, tok, "/users/support@contoso.example/mailFolders/inbox/messages", &ge); st != 403 || ge.Error.Code != "ErrorAccessDenied" {
		t.Errorf("shared without rights: %d %+v", st, ge)
	}
	if err := f.ctl.GrantMailboxRights(ctx, "support@contoso.example", "ada@contoso.example", graphsim.RightRead); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.graphGet(t, tok, "/users/support@contoso.example/mailFolders/inbox/messages", nil); st != 200 {
		t.Errorf("shared with rights: %d", st)
	}
	plain := f.token(t, "Mail.Read")
	if st, _ := f.graphGet(t, plain, "/users/support@contoso.example/messages", nil); st != 403 {
		t.Errorf("shared without the .Shared scope: %d", st)
	}
	noMail := f.token(t, "User.Read")
	if st, _ := f.graphGet(t, noMail, "/me/messages", nil); st != 403 {
		t.Errorf("mail without a mail scope: %d", st)
	}
	// Expiry follows the simulated clock.
	f.sim.AdvanceClock(61 * time.Minute)
	if st, _ := f.graphGet(t, tok, "/me/messages", &ge); st != 401 || ge.Error.Message != "Lifetime validation failed, the token is expired." {
		t.Errorf("expired: %d %+v", st, ge)
	}
}

func TestThrottlingAndFaults(t *testing.T) {
	f := newFixture(t, graphsim.Options{MailboxRequests: 20, MailboxWindow: 10 * time.Minute})
	ctx := context.Background()
	tok := f.token(t, "Mail.Read")
	// Hold four requests in flight; the fifth is over the concurrency limit.
	if err := f.ctl.SetFault(ctx, graphsim.Fault{Endpoint: "folders", Latency: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { f.graphGet(t, tok, "/me/mailFolders", nil) })
	}
	time.Sleep(500 * time.Millisecond) // the four are in flight
	var ge graphErr
	st, hdr := f.graphGet(t, tok, "/me/messages", &ge)
	wg.Wait()
	if st != 429 || ge.Error.Code != "ApplicationThrottled" || !strings.Contains(ge.Error.Message, "MailboxConcurrency") || hdr.Get("Retry-After") == "" {
		t.Errorf("fifth concurrent request: %d %+v", st, ge)
	}
	if err := f.ctl.ClearFaults(ctx); err != nil {
		t.Fatal(err)
	}
	// The request budget: 20 per window, shared by every request.
	var last int
	for range 20 {
		last, hdr = f.graphGet(t, tok, "/me/messages", &ge)
	}
	if last != 429 || !strings.Contains(ge.Error.Message, "MailboxRequests") || hdr.Get("Retry-After") == "" {
		t.Errorf("over budget: %d %+v", last, ge)
	}
	// Another mailbox has its own budget.
	if err := f.ctl.GrantMailboxRights(ctx, "support@contoso.example", "ada@contoso.example", graphsim.RightRead); err != nil {
		t.Fatal(err)
	}
	shared := f.token(t, "Mail.Read.Shared")
	if st, _ := f.graphGet(t, shared, "/users/support@contoso.example/messages", nil); st != 200 {
		t.Errorf("other mailbox throttled too: %d", st)
	}
	// Injected faults.
	f.sim.SetFault(graphsim.Fault{Endpoint: "*", Throttle: 1, RetryAfter: 2.5})
	if st, hdr := f.graphGet(t, shared, "/users/support@contoso.example/messages", &ge); st != 429 || hdr.Get("Retry-After") != "2.5" || ge.Error.Code != "TooManyRequests" {
		t.Errorf("injected 429: %d %v", st, hdr)
	}
	f.sim.SetFault(graphsim.Fault{Endpoint: "*", Unavailable: 1})
	if st, _ := f.graphGet(t, shared, "/users/support@contoso.example/messages", nil); st != 503 {
		t.Errorf("injected 503: %d", st)
	}
	f.sim.SetFault(graphsim.Fault{Endpoint: "*", Timeout: 1})
	if st, _ := f.graphGet(t, shared, "/users/support@contoso.example/messages", nil); st != 504 {
		t.Errorf("injected 504: %d", st)
	}
	f.sim.SetFault(graphsim.Fault{Endpoint: "*", Reset: 1})
	req, _ := http.NewRequest("GET", f.sim.GraphURL()+"/me/messages", nil)
	req.Header.Set("Authorization", "Bearer "+shared)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("injected reset: the request succeeded")
	}
	f.sim.ClearFaults()
	c, _ := f.ctl.Counters(ctx)
	if c["throttled.messages"] < 2 || c["faults.messages.429"] != 1 || c["faults.messages.reset"] < 1 {
		t.Errorf("counters = %v", c)
	}
}

func TestExpandAttachments(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "with", Attachments: []graphsim.AttachmentSpec{{Name: "a.txt", ContentType: "text/plain", Content: []byte("abc")}}})
	var p struct {
		Value []struct {
			Attachments []map[string]any `json:"attachments"`
		} `json:"value"`
	}
	f.graphGet(t, tok, "/me/mailFolders/inbox/messages/delta?$select=subject&$expand=attachments($select=id,name,size)", &p)
	if len(p.Value) != 1 || len(p.Value[0].Attachments) != 1 || p.Value[0].Attachments[0]["size"] != float64(3) || p.Value[0].Attachments[0]["contentBytes"] != nil {
		t.Errorf("expanded = %+v", p.Value)
	}
	var ge graphErr
	if st, _ := f.graphGet(t, tok, "/me/messages?$expand=extensions", &ge); st != 400 {
		t.Errorf("unsupported expand: %d", st)
	}
}

// A folder's messages filtered by address, as outlookd fetches a new
// contact's past mail: as the sender, or among the To or Cc recipients,
// without regard to case; a malformed lambda is refused.
func TestMessagesFilteredByAddress(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	base := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	ann := graphsim.Recipient{Address: "Ann@Fabrikam.example"}
	other := graphsim.Recipient{Address: "zed@fabrikam.example"}
	inject(t, f, f.ada.UPN,
		graphsim.MessageSpec{Subject: "from-ann", Received: base, From: ann, To: []graphsim.Recipient{other}},
		graphsim.MessageSpec{Subject: "to-ann", Received: base.Add(time.Hour), From: other, To: []graphsim.Recipient{other, ann}},
		graphsim.MessageSpec{Subject: "cc-ann", Received: base.Add(2 * time.Hour), From: other, To: []graphsim.Recipient{other}, Cc: []graphsim.Recipient{ann}},
		graphsim.MessageSpec{Subject: "old-to-ann", Received: base.Add(-48 * time.Hour), From: other, To: []graphsim.Recipient{ann}},
		graphsim.MessageSpec{Subject: "none", Received: base.Add(3 * time.Hour), From: other, To: []graphsim.Recipient{other}},
	)
	window := "receivedDateTime ge 2026-10-01T00:00:00Z and "
	tests := []struct{ filter, want string }{
		{"from/emailAddress/address eq 'ann@fabrikam.example'", "from-ann"},
		{"toRecipients/any(r:r/emailAddress/address eq 'ANN@fabrikam.example')", "to-ann"},
		{"ccRecipients/any(a: a/emailAddress/address eq 'ann@fabrikam.example')", "cc-ann"},
		{"toRecipients/any(r:r/emailAddress/address eq 'nobody@fabrikam.example')", ""},
		{"(from/emailAddress/address eq 'ann@fabrikam.example' or toRecipients/any(r:r/emailAddress/address eq 'ann@fabrikam.example') or ccRecipients/any(r:r/emailAddress/address eq 'ann@fabrikam.example'))", "cc-ann,to-ann"}, // the first page of two,
	}
	for _, tt := range tests {
		var p page
		if st, _ := f.graphGet(t, tok, "/me/mailFolders/inbox/messages?$top=2&$filter="+url.QueryEscape(window+tt.filter), &p); st != 200 {
			t.Fatalf("%s: %d", tt.filter, st)
		}
		var got []string
		for _, m := range p.Value {
			got = append(got, *m.Subject)
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("%s: %v, want %q", tt.filter, got, tt.want)
		}
	}
	for _, bad := range []string{"toRecipients/any(r:x/emailAddress/address eq 'a@b.example')", "isRead eq true or isRead eq false", "(isRead eq true or )"} {
		var ge graphErr
		if st, _ := f.graphGet(t, tok, "/me/messages?$filter="+url.QueryEscape(bad), &ge); st != 400 || ge.Error.Code != "BadRequest" {
			t.Errorf("%s: %d %+v", bad, st, ge.Error)
		}
	}
}
