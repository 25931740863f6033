package connect_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/workflows"
)

// TestServiceAccountSyncsSharedMailboxes runs a service account against the
// real stack and graphsim: it signs in with the .Shared scopes, attaches
// two shared mailboxes (refusing one it cannot open and one that does not
// exist, each with its reason), backfills and polls them into Postgres as
// graphsim holds them, loses and regains one mailbox's rights without
// touching the other, detaches one keeping its mail, survives a dead
// credential (every mailbox waits and catches up after re-consent), and
// disconnects, detaching the rest.
func TestServiceAccountSyncsSharedMailboxes(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrg(t, graphsim.Options{}, workflows.Options{PollEvery: time.Second})
	sales, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "sales@contoso.example", DisplayName: "Sales", Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl.GrantMailboxRights(ctx, sales.UPN, org.Service.UPN, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	for _, box := range []string{org.Shared.UPN, sales.UPN} {
		if _, err := e.Ctl.InjectMessages(ctx, box, make([]graphsim.MessageSpec, 25)...); err != nil {
			t.Fatal(err)
		}
	}

	settings := workflows.Settings{Features: workflows.Features{Read: true}, Bodies: workflows.BodiesStore}
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "org-1", OwnerID: "admin", Mode: workflows.ModeServiceAccount,
		Settings: settings, LoginHint: org.Service.UPN})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.Connect.Callback(ctx, simtest.Authorize(t, created.AuthorizeURL)); err != nil || out.State != workflows.StateActive {
		t.Fatalf("service account sign-in: %+v %v", out, err)
	}
	id := created.ConnectionID
	st := e.Status(id)
	if !st.Granted.Read || st.Mailbox != org.Service.UPN {
		t.Fatalf("service account connection: %+v", st)
	}

	attach := func(mailboxID, address string, retention string) (workflows.MailboxRef, error) {
		h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: workflows.UpdateAttach, WaitForStage: client.WorkflowUpdateStageCompleted,
			Args: []any{workflows.AttachInput{MailboxID: mailboxID, Address: address,
				Settings: workflows.Settings{Features: workflows.Features{Read: true}, Bodies: workflows.BodiesStore, Retention: retention}}},
		})
		var ref workflows.MailboxRef
		if err == nil {
			err = h.Get(ctx, &ref)
		}
		return ref, err
	}
	for _, refused := range []struct{ address, reason string }{
		{e.Ada.UPN, workflows.ReasonMailboxUnreachable},
		{"nobody@contoso.example", "mailbox_not_found"},
	} {
		_, err := attach("mbx_refused_"+strings.ReplaceAll(id[len("conn_"):], "-", "_"), refused.address, "")
		var appErr *temporal.ApplicationError
		var detail struct{ Reason, Text string }
		if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrMailboxUnreachable || appErr.Details(&detail) != nil || detail.Reason != refused.reason {
			t.Errorf("attaching %s: %v (%+v), want %s", refused.address, err, detail, refused.reason)
		}
	}
	if boxes, _ := e.Store.ListMailboxes(ctx, id); len(boxes) != 0 {
		t.Errorf("refused mailboxes were registered: %+v", boxes)
	}
	// Mailbox workflows are named by ID in the stack's one namespace: each
	// run has its own.
	suffix := strings.ReplaceAll(id[len("conn_"):], "-", "_")
	supportID, salesID := "mbx_support_"+suffix, "mbx_sales_"+suffix
	if _, err := attach(supportID, org.Shared.UPN, workflows.RetentionKeep); err != nil {
		t.Fatal(err)
	}
	if _, err := attach(salesID, sales.UPN, ""); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-30 * 24 * time.Hour)
	for _, mb := range []struct{ id, upn string }{{supportID, org.Shared.UPN}, {salesID, sales.UPN}} {
		st := e.WaitForMailbox(mb.id, 60*time.Second, "backfill of "+mb.upn, func(s workflows.Status) bool {
			return !s.Backfill.Completed.IsZero() && s.Sync.Mode == workflows.SyncPolling
		})
		if st.ConnectionID != id || st.Sync.PollReason == "" {
			t.Errorf("%s: connection %q, poll reason %q", mb.upn, st.ConnectionID, st.Sync.PollReason)
		}
		if _, err := e.Ctl.InjectMessages(ctx, mb.upn, make([]graphsim.MessageSpec, 5)...); err != nil {
			t.Fatal(err)
		}
	}
	waitSynced := func(mailboxID, upn string) {
		t.Helper()
		want := syncedFor(t, e, upn, start)
		deadline := time.Now().Add(30 * time.Second)
		for n, _ := e.Store.CountMessages(ctx, mailboxID); n != int64(len(want)) && time.Now().Before(deadline); n, _ = e.Store.CountMessages(ctx, mailboxID) {
			time.Sleep(200 * time.Millisecond)
		}
		compare(t, e, mailboxID, want, true)
	}
	waitSynced(supportID, org.Shared.UPN)
	waitSynced(salesID, sales.UPN)

	// Rights removed from sales: only sales waits, once told; support goes on.
	if err := e.Ctl.RevokeMailboxRights(ctx, sales.UPN, org.Service.UPN); err != nil {
		t.Fatal(err)
	}
	e.WaitForMailbox(salesID, 30*time.Second, "access lost", func(s workflows.Status) bool { return s.State == workflows.StateAccessLost })
	if _, err := e.Ctl.InjectMessages(ctx, org.Shared.UPN, make([]graphsim.MessageSpec, 2)...); err != nil {
		t.Fatal(err)
	}
	waitSynced(supportID, org.Shared.UPN)
	if err := e.Ctl.GrantMailboxRights(ctx, sales.UPN, org.Service.UPN, graphsim.RightFullAccess); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, sales.UPN, make([]graphsim.MessageSpec, 3)...); err != nil {
		t.Fatal(err)
	}
	mailboxUpdate(t, e, salesID, workflows.UpdateResync, workflows.ResyncInput{})
	e.WaitForMailbox(salesID, 30*time.Second, "access restored", func(s workflows.Status) bool { return s.State == workflows.StateActive })
	waitSynced(salesID, sales.UPN)

	// Detach support, keeping its mail.
	kept, _ := e.Store.CountMessages(ctx, supportID)
	mailboxUpdate(t, e, supportID, workflows.UpdateDisconnect)
	e.WaitFor(id, 30*time.Second, "support detached", func(s workflows.Status) bool { return len(s.Mailboxes) == 1 })
	if m, _ := e.Store.GetMailbox(ctx, supportID); m.State != workflows.StateDisconnected || m.DetachedAt == nil {
		t.Errorf("detached support: %+v", m)
	}
	if n, _ := e.Store.CountMessages(ctx, supportID); n != kept || kept == 0 {
		t.Errorf("support kept %d of %d messages", n, kept)
	}

	// The credential dies: the connection and sales wait; mail arriving
	// meanwhile is caught up after re-consent.
	if err := e.Ctl.Revoke(ctx, org.Service.UPN, "password_changed"); err != nil {
		t.Fatal(err)
	}
	// The access token in hand lives on until it expires; then the
	// refresh is refused.
	if _, err := e.Ctl.AdvanceClock(ctx, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	e.WaitForMailbox(salesID, 30*time.Second, "sales paused", func(s workflows.Status) bool { return s.State == workflows.StateReauthRequired })
	e.WaitFor(id, 30*time.Second, "connection reauth_required", func(s workflows.Status) bool { return s.State == workflows.StateReauthRequired })
	if _, err := e.Ctl.InjectMessages(ctx, sales.UPN, make([]graphsim.MessageSpec, 4)...); err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl.Restore(ctx, org.Service.UPN); err != nil {
		t.Fatal(err)
	}
	authURL, err := e.Connect.Reauthorize(ctx, id, workflows.ModeServiceAccount, settings, org.Service.UPN)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := e.Connect.Callback(ctx, simtest.Authorize(t, authURL)); err != nil || out.State != workflows.StateActive {
		t.Fatalf("re-consent: %+v %v", out, err)
	}
	e.WaitForMailbox(salesID, 30*time.Second, "sales resumed", func(s workflows.Status) bool { return s.State == workflows.StateActive })
	waitSynced(salesID, sales.UPN)

	// Disconnect: sales is detached (its retention deletes), then the
	// connection ends.
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.ConnectionWorkflowID(id),
		UpdateName: workflows.UpdateDisconnect, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Temporal.GetWorkflow(ctx, workflows.ConnectionWorkflowID(id), "").Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if m, _ := e.Store.GetMailbox(ctx, salesID); m.State != workflows.StateDisconnected {
		t.Errorf("sales after the disconnect: %s", m.State)
	}
	if n, _ := e.Store.CountMessages(ctx, salesID); n != 0 {
		t.Errorf("sales kept %d messages, its retention deletes", n)
	}
	if n, _ := e.Store.CountMessages(ctx, supportID); n != kept {
		t.Errorf("support, detached earlier keeping its mail, holds %d of %d", n, kept)
	}
	events, _ := e.Store.Events(ctx, id)
	counts := map[string]int{}
	for _, ev := range events {
		counts[ev.Type]++
	}
	for typ, want := range map[string]int{"mailbox.attached": 2, "mailbox.access_lost": 1, "mailbox.detached": 2, "connection.reauth_required": 1, "connection.disconnected": 1} {
		if counts[typ] != want {
			t.Errorf("%d %s events, want %d (all: %v)", counts[typ], typ, want, counts)
		}
	}
}

// mailboxUpdate runs an update on an attached mailbox's workflow.
func mailboxUpdate(t *testing.T, e *enginetest.Engine, mailboxID, name string, args ...any) {
	t.Helper()
	ctx := context.Background()
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.MailboxWorkflowID(mailboxID),
		UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(ctx, nil)
	}
	if err != nil {
		t.Fatalf("%s of %s: %v", name, mailboxID, err)
	}
}

// TestMailboxesShareOneRefresh: the attached mailboxes of a service account
// share its tokens; when the access token is found expiring by many calls
// at once, one refresh serves them all.
func TestMailboxesShareOneRefresh(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrg(t, graphsim.Options{}, workflows.Options{})
	created, err := e.Connect.Create(ctx, connect.Request{OrgID: "org-1", OwnerID: "admin", Mode: workflows.ModeServiceAccount,
		Settings: workflows.Settings{Features: workflows.Features{Read: true}}, LoginHint: org.Service.UPN})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.Callback(ctx, simtest.Authorize(t, created.AuthorizeURL)); err != nil {
		t.Fatal(err)
	}
	id := created.ConnectionID
	// The stored access token is about to expire.
	tok, version, err := e.Vault.Tokens().GetTokens(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tok.Expiry = time.Now().Add(time.Minute)
	if err := e.Vault.Tokens().PutTokens(ctx, id, tok, version); err != nil {
		t.Fatal(err)
	}
	activities.ForgetToken(e.Acts, id) // the worker's copy expires with it
	// A slow token endpoint: every call finds the token expiring while the
	// first refresh is still under way.
	if err := e.Ctl.SetFault(ctx, graphsim.Fault{Endpoint: "token", Latency: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	before, err := e.Ctl.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const calls = 8
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for range calls {
		wg.Go(func() {
			_, err := e.Acts.CheckMailbox(ctx, workflows.CheckMailboxInput{ConnectionID: id, Address: org.Shared.UPN})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after, err := e.Ctl.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := after["tokens.issued.refresh_token"] - before["tokens.issued.refresh_token"]; n != 1 {
		t.Errorf("%d refreshes for %d calls that found the token expiring together, want 1", n, calls)
	}
}
