package graphsim_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
)

func TestControlAPIGroundTruth(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	ids, err := f.ctl.Generate(ctx, f.ada.UPN, graphsim.GenerateSpec{Count: 200, Days: 60, AttachmentShare: 0.2, ThreadShare: 0.4, Seed: 7})
	if err != nil || len(ids) != 200 {
		t.Fatalf("generate: %d %v", len(ids), err)
	}
	if err := f.ctl.MoveMessage(ctx, f.ada.UPN, ids[0], "archive"); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.DeleteMessage(ctx, f.ada.UPN, ids[1]); err != nil {
		t.Fatal(err)
	}
	cats := []string{"Blue"}
	if err := f.ctl.UpdateMessage(ctx, f.ada.UPN, ids[2], graphsim.MessageUpdate{Categories: &cats}); err != nil {
		t.Fatal(err)
	}
	truth, err := f.ctl.GroundTruth(ctx, f.ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	if len(truth.Messages) != 199 || len(truth.Deleted) != 1 || truth.Deleted[0] != ids[1] {
		t.Fatalf("truth: %d messages, deleted %v", len(truth.Messages), truth.Deleted)
	}
	byID := map[string]graphsim.MessageTruth{}
	attachments, threads := 0, map[string]int{}
	for _, m := range truth.Messages {
		byID[m.ImmutableID] = m
		if m.HasAttachments {
			attachments++
		}
		threads[m.ConversationID]++
		if m.Received.Before(time.Now().Add(-61*24*time.Hour)) || m.InternetMessageID == "" || m.Subject == "" || m.BodyPreview == "" {
			t.Fatalf("unrealistic message: %+v", m)
		}
	}
	folders := map[string]string{}
	for _, fo := range truth.Folders {
		folders[fo.ID] = fo.WellKnown
	}
	if folders[byID[ids[0]].FolderID] != "archive" || len(byID[ids[2]].Categories) != 1 {
		t.Errorf("moved/updated not reflected: %+v %+v", byID[ids[0]], byID[ids[2]])
	}
	if attachments < 20 || len(threads) > 180 {
		t.Errorf("generator: %d with attachments, %d threads", attachments, len(threads))
	}
	// What Graph serves agrees with the ground truth.
	tok := f.token(t, "Mail.Read")
	var got message
	f.graphGet(t, tok, "/me/messages/"+url.PathEscape(ids[5]), &got, "Prefer", `IdType="ImmutableId"`)
	if got.ChangeKey != byID[ids[5]].ChangeKey || *got.Subject != byID[ids[5]].Subject || got.ParentID != byID[ids[5]].FolderID {
		t.Errorf("served %+v, truth %+v", got, byID[ids[5]])
	}

	now, err := f.ctl.AdvanceClock(ctx, 36*time.Hour)
	if err != nil || now.Before(time.Now().Add(35*time.Hour)) {
		t.Errorf("clock: %v %v", now, err)
	}
	var cerr *graphsim.ControlError
	if err := f.ctl.Revoke(ctx, f.ada.UPN, "bored"); !errors.As(err, &cerr) || cerr.Status != 400 {
		t.Errorf("unknown reason: %v", err)
	}
	if _, err := f.ctl.GroundTruth(ctx, "nobody@contoso.example"); !errors.As(err, &cerr) || cerr.Status != 404 {
		t.Errorf("unknown mailbox: %v", err)
	}
	if err := f.ctl.SetFault(ctx, graphsim.Fault{}); !errors.As(err, &cerr) || cerr.Status != 400 {
		t.Errorf("fault without endpoint: %v", err)
	}
	resp, _ := http.Post(f.sim.URL()+"/_sim/users", "application/json", strings.NewReader(`{"tenant":"contoso.example","userPrincipalName":"x@contoso.example","colour":"red"}`))
	if resp.StatusCode != 400 {
		t.Errorf("unknown field accepted: %d", resp.StatusCode)
	}
	resp.Body.Close()
	if err := f.ctl.ResetCounters(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.ctl.ResetThrottle(ctx); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.ctl.Counters(ctx); len(c) != 0 {
		t.Errorf("counters after reset: %v", c)
	}
}

func TestPKCEPlainAndPrompts(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	cfg := f.oauth("common", "offline_access", "Mail.Read")
	verifier := oauth2.GenerateVerifier()
	// A challenge without a method is plain (docs/graph.md#authorization-code-flow-and-pkce).
	q := authorize(t, cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("login_hint", "ada@contoso.example")))
	if _, err := cfg.Exchange(context.Background(), q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("plain PKCE: %v", err)
	}
	// prompt=select_account shows the page even with auto-consent.
	resp, err := noRedirect.Get(cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("login_hint", "ada@contoso.example"), oauth2.SetAuthURLParam("prompt", "select_account")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("select_account: %d", resp.StatusCode)
	}
	// response_mode=form_post answers with a self-posting form.
	resp, err = noRedirect.Get(cfg.AuthCodeURL("s", oauth2.SetAuthURLParam("login_hint", "ada@contoso.example"), oauth2.SetAuthURLParam("response_mode", "form_post")))
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	n, _ := resp.Body.Read(b)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b[:n]), `name="code"`) {
		t.Errorf("form_post: %d %s", resp.StatusCode, b[:n])
	}
}

func TestDeltaReplays(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	inject(t, f, f.ada.UPN, make([]graphsim.MessageSpec, 6)...)
	f.sim.SetFault(graphsim.Fault{Endpoint: "delta", Duplicate: 1})
	items, _, pages := deltaRound(t, f, tok, "/me/mailFolders/inbox/messages/delta", "3")
	unique := map[string]bool{}
	for _, m := range items {
		unique[m.ID] = true
	}
	if len(unique) != 6 || len(items) != 6+pages {
		t.Errorf("%d items (%d unique) in %d pages", len(items), len(unique), pages)
	}
}

// TestInjectedMailIsAddressed: mail injected with only a subject gets a
// correspondent as sender and the mailbox as recipient (the other way
// round in Sent Items), as real mail has; given addresses are kept.
func TestInjectedMailIsAddressed(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	given := graphsim.Recipient{Name: "Given Sender", Address: "given@fabrikam.com"}
	ids, err := f.ctl.InjectMessages(ctx, f.ada.UPN,
		graphsim.MessageSpec{Subject: "bare"}, graphsim.MessageSpec{Subject: "sent", Folder: "sentitems"}, graphsim.MessageSpec{Subject: "given", From: given})
	if err != nil {
		t.Fatal(err)
	}
	truth, err := f.ctl.GroundTruth(ctx, f.ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]graphsim.MessageTruth{}
	for _, m := range truth.Messages {
		byID[m.ImmutableID] = m
	}
	bare, sent, withFrom := byID[ids[0]], byID[ids[1]], byID[ids[2]]
	if !strings.Contains(bare.From.Address, "@") || bare.From.Name == "" || strings.EqualFold(bare.From.Address, f.ada.Mail) {
		t.Errorf("bare message from %+v", bare.From)
	}
	if len(bare.To) != 1 || !strings.EqualFold(bare.To[0].Address, f.ada.Mail) {
		t.Errorf("bare message to %+v", bare.To)
	}
	if !strings.EqualFold(sent.From.Address, f.ada.Mail) || len(sent.To) != 1 || strings.EqualFold(sent.To[0].Address, f.ada.Mail) {
		t.Errorf("sent message from %+v to %+v", sent.From, sent.To)
	}
	if withFrom.From != given {
		t.Errorf("given sender became %+v", withFrom.From)
	}
}
