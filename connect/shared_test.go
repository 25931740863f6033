package connect_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
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
	// Mailbox workflow IDs live in the stack's shared namespace: each run's
	// are its own (a run that stopped half-way leaves its mailboxes'
	// workflows running).
	suffix := strings.TrimPrefix(id, "conn_")
	refusedID, supportID, salesID := "mbx_refused_"+suffix, "mbx_support_"+suffix, "mbx_sales_"+suffix
	for _, refused := range []struct{ address, reason string }{
		{e.Ada.UPN, workflows.ReasonMailboxUnreachable},
		{"nobody@contoso.example", "mailbox_not_found"},
	} {
		_, err := attach(refusedID, refused.address, "")
		var appErr *temporal.ApplicationError
		var detail struct{ Reason, Text string }
		if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrMailboxUnreachable || appErr.Details(&detail) != nil || detail.Reason != refused.reason {
			t.Errorf("attaching %s: %v (%+v), want %s", refused.address, err, detail, refused.reason)
		}
	}
	if _, err := e.Store.GetMailbox(ctx, refusedID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused mailbox was registered: %v", err)
	}
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
	// The access token outlives the revocation until it expires at Graph;
	// then a mailbox's call is refused, and so is the refresh that follows.
	e.Sim.AdvanceClock(2 * time.Hour)
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
