package connect_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// TestApplicationConnectionSyncsTheTenant runs an application connection
// against the real stack and graphsim: credentials refused with what is
// wrong; then the daemon app's, which discovers the tenant's mailboxes
// (users without a mailbox, and one an application access policy keeps
// out, excluded with their reasons; the shared mailbox synced as asked),
// syncs their mail, follows a join and a leave, takes a new secret, and
// disconnects.
func TestApplicationConnectionSyncsTheTenant(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrg(t, graphsim.Options{}, workflows.Options{PollEvery: time.Second})
	tenant := org.Tenant.Tenant.ID
	secret := org.Daemon.Secrets[0].Value

	// An app with Mail.Read and User.Read.All granted, not MailboxSettings.Read.
	partial, err := e.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "partial", HomeTenant: tenant, AppRoles: []string{"Mail.Read", "User.Read.All", "MailboxSettings.Read"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl.GrantConsent(ctx, graphsim.ConsentSpec{Tenant: tenant, ClientID: partial.ClientID, Roles: []string{"Mail.Read", "User.Read.All"}}); err != nil {
		t.Fatal(err)
	}
	unconsented, err := e.Ctl.AddApp(ctx, graphsim.AppSpec{Name: "unconsented", HomeTenant: tenant, AppRoles: []string{"Mail.Read"}})
	if err != nil {
		t.Fatal(err)
	}
	settings := workflows.Settings{Features: workflows.Features{Read: true}, Bodies: workflows.BodiesStore, Retention: workflows.RetentionDelete}
	create := func(tenant, clientID, secret string, sel workflows.Selection) (string, error) {
		return e.Connect.CreateApplication(ctx, connect.AppRequest{OrgID: "org-1", OwnerID: "admin", Settings: settings, Selection: sel,
			Credential: identity.AppCredential{Tenant: tenant, ClientID: clientID, Secret: secret}, SecretExpires: time.Now().Add(90 * 24 * time.Hour)})
	}
	for _, tc := range []struct {
		name, tenant, client, secret string
		want                         identity.AppReason
	}{
		{"wrong secret", tenant, org.Daemon.ClientID, "not-the-secret", identity.AppInvalidSecret},
		{"unknown tenant", "nowhere.example", org.Daemon.ClientID, secret, identity.AppTenantNotFound},
		{"personal accounts", "consumers", org.Daemon.ClientID, secret, identity.AppPersonalTenant},
		{"no consent", tenant, unconsented.ClientID, unconsented.Secrets[0].Value, identity.AppConsentRequired},
		{"a permission missing", tenant, partial.ClientID, partial.Secrets[0].Value, identity.AppPermissionMissing},
	} {
		_, err := create(tc.tenant, tc.client, tc.secret, workflows.Selection{})
		var ae *identity.AppError
		if !errors.As(err, &ae) || ae.Reason != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
			continue
		}
		if tc.want == identity.AppPermissionMissing && (len(ae.Missing) != 1 || ae.Missing[0] != "MailboxSettings.Read") {
			t.Errorf("missing permissions: %v", ae.Missing)
		}
	}

	nomail, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "kiosk@contoso.example", NoMailbox: true})
	if err != nil {
		t.Fatal(err)
	}
	ceo, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "ceo@contoso.example", DisplayName: "The CEO"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Ctl.SetAppAccessPolicy(ctx, graphsim.AppAccessPolicy{Tenant: tenant, AppID: org.Daemon.ClientID,
		AccessRight: graphsim.PolicyDenyAccess, Members: []string{ceo.UPN}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 12)...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Ctl.InjectMessages(ctx, org.Shared.UPN, make([]graphsim.MessageSpec, 5)...); err != nil {
		t.Fatal(err)
	}

	id, err := create(tenant, org.Daemon.ClientID, secret, workflows.Selection{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	row, err := e.Store.GetConnection(ctx, id)
	if err != nil || row.Mode != workflows.ModeApplication || row.TenantID != tenant || row.State != workflows.StateActive {
		t.Fatalf("registry row: %+v %v", row, err)
	}
	user := func(upn string) store.DirectoryUser {
		users, err := e.Store.ListDirectoryUsers(ctx, id, "", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if u.Address == upn {
				return u
			}
		}
		return store.DirectoryUser{}
	}
	waitUntil(t, 60*time.Second, "the first discovery round", func() bool {
		st := e.Status(id)
		return st.App != nil && st.App.Discovery.Rounds >= 1
	})
	for upn, want := range map[string]string{nomail.UPN: "excluded:no_mailbox", ceo.UPN: "excluded:access_policy",
		e.Ada.UPN: "syncing:", org.Shared.UPN: "syncing:", e.Admin.UPN: "syncing:"} {
		u := user(upn)
		if got := u.Status + ":" + u.Reason; got != want {
			t.Errorf("%s: %s, want %s", upn, got, want)
		}
	}
	if !user(org.Shared.UPN).Shared {
		t.Errorf("the shared mailbox is not marked shared")
	}
	ada := user(e.Ada.UPN).MailboxID
	waitUntil(t, 60*time.Second, "ada's mail", func() bool {
		n, err := e.Store.CountMessagesOf(ctx, []string{ada})
		return err == nil && n[ada] == 12
	})
	if st := e.WaitForMailbox(ada, 30*time.Second, "polling", func(st workflows.Status) bool { return st.Sync.Mode != "" }); st.Mode != workflows.ModeApplication ||
		st.Sync.Mode != workflows.SyncPolling || st.Sync.PollReason == "" {
		t.Errorf("ada's mailbox: mode %s, sync %s (%q)", st.Mode, st.Sync.Mode, st.Sync.PollReason)
	}
	// The mailboxes were backfilled ahead of their workflows, which began
	// live: run 1 covered, no backfill activity of their own.
	if p := e.Status(id).App.Prefill; p.Done < 3 || p.Messages < 17 {
		t.Errorf("the connection's backfill ahead: %+v", p)
	}
	if st := e.WaitForMailbox(ada, 10*time.Second, "backfilled", func(st workflows.Status) bool { return st.Backfill.Runs == 1 }); st.Backfill.Covered.IsZero() || len(st.Backfill.Folders) == 0 {
		t.Errorf("ada's mailbox's backfill: %+v", st.Backfill)
	}
	if n := activitiesRun(t, e, workflows.MailboxWorkflowID(ada), workflows.ActivityBackfillMailbox, workflows.ActivityBackfillFolder); n != 0 {
		t.Errorf("ada's mailbox's workflow ran %d backfill activities; its connection backfilled it", n)
	}
	// Mail arriving later comes with the next poll.
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "later"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "ada's later mail", func() bool {
		n, err := e.Store.CountMessagesOf(ctx, []string{ada})
		return err == nil && n[ada] == 13
	})

	// A join and a leave, seen at the next round.
	newcomer, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "newcomer@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	leaver := user(e.Admin.UPN).MailboxID
	if err := e.Ctl.DeleteUser(ctx, e.Admin.UPN, false); err != nil {
		t.Fatal(err)
	}
	if _, err := update(ctx, e, id, workflows.UpdateDiscover); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "the join and the leave", func() bool {
		return user(newcomer.UPN).Status == store.DirSyncing && user(e.Admin.UPN).Status == store.DirLeft
	})
	// Its mailbox detaches (the retention deletes its mail).
	waitUntil(t, 30*time.Second, "the leaver's mailbox detached", func() bool {
		m, err := e.Store.GetMailbox(ctx, leaver)
		return err == nil && m.State == workflows.StateDisconnected
	})
	if n, _ := e.Store.CountMessagesOf(ctx, []string{leaver}); n[leaver] != 0 {
		t.Errorf("the leaver's mail was kept: %d messages", n[leaver])
	}

	// A new secret, checked and taken without a restart.
	if err := e.Sim.AddSecret(org.Daemon.ClientID, "second-secret-value", time.Now().Add(180*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.RotateCredential(ctx, id, "wrong", "", time.Time{}); err == nil {
		t.Error("a wrong new secret was taken")
	}
	st, err := e.Connect.RotateCredential(ctx, id, "second-secret-value", "", time.Now().Add(180*24*time.Hour))
	if err != nil || st.State != workflows.StateActive || st.App.Rotations != 1 {
		t.Fatalf("rotation: %+v %v", st.App, err)
	}
	if cred, err := e.Vault.Tokens().GetAppCredential(ctx, id); err != nil || cred.Secret != "second-secret-value" {
		t.Errorf("vault after rotation: %v", err)
	}

	if _, err := e.Connect.Disconnect(ctx, row); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(id, 60*time.Second, "disconnected", func(st workflows.Status) bool { return st.State == workflows.StateDisconnected })
	ids, err := e.Store.LiveMailboxIDs(ctx, id, "", 10)
	if err != nil || len(ids) != 0 {
		t.Errorf("mailboxes left after the disconnect: %v %v", ids, err)
	}
	if n, _ := e.Vault.Tokens().Count(ctx, id); n != 0 {
		t.Errorf("%d secrets left in Vault", n)
	}
	if os.Getenv("OUTLOOKD_RECORD_HISTORY") == "1" {
		recordHistory(t, e, workflows.ConnectionWorkflowID(id), "../workflows/testdata/connection_application_ends.json")
		recordHistory(t, e, workflows.MailboxWorkflowID(ada), "../workflows/testdata/mailbox_application_prefill.json")
	}
}

func update(ctx context.Context, e *enginetest.Engine, id, name string, args ...any) (workflows.Status, error) {
	h, err := e.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.Status
	if err == nil {
		err = h.Get(ctx, &st)
	}
	return st, err
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestApplicationMailboxBackfillGoesOnInAChild: a mailbox whose backfill
// outlasts its first activity's budget goes on in a backfill child from
// the cursors that activity committed: every message arrives once, each
// folder's count adds both up, and the backfill completes once. One
// folder at a time, so the folders the activity had no time to begin are
// the child's too.
func TestApplicationMailboxBackfillGoesOnInAChild(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrg(t, graphsim.Options{}, workflows.Options{PollEvery: time.Minute, PageSize: 10, FolderConcurrency: 1})
	const inbox = 120
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, inbox)...); err != nil {
		t.Fatal(err)
	}
	budgetRunsOutAfterTwoPages(e)
	id := createDaemon(t, e, org, workflows.Selection{Include: []string{e.Ada.UPN}})
	ada := waitMailboxOf(t, e, id, e.Ada.UPN, "")
	st := e.WaitForMailbox(ada, 120*time.Second, "backfilled", func(st workflows.Status) bool { return !st.Backfill.Completed.IsZero() })
	n, err := e.Store.CountMessagesOf(ctx, []string{ada})
	if err != nil || n[ada] != inbox {
		t.Errorf("%d of %d messages stored (%v)", n[ada], inbox, err)
	}
	var fetched int64
	for _, f := range st.Backfill.Folders {
		if !f.Done {
			t.Errorf("folder %s not done: %+v", f.Name, f)
		}
		fetched += f.Fetched
	}
	if fetched != inbox || st.Backfill.Runs != 1 {
		t.Errorf("progress counts %d fetched in %d runs, want %d in 1", fetched, st.Backfill.Runs, inbox)
	}
	// The child ran, and the event was written once.
	if _, err := e.Temporal.DescribeWorkflowExecution(ctx, workflows.MailboxWorkflowID(ada)+"/backfill/1", ""); err != nil {
		t.Errorf("no backfill child: %v", err)
	}
	events := func() int {
		var n int
		if err := e.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'backfill.completed' AND id LIKE $1`, ada+":backfill:%").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The event is written after the status says the backfill completed.
	waitUntil(t, 10*time.Second, "the backfill.completed event", func() bool { return events() >= 1 })
	if n := events(); n != 1 {
		t.Errorf("%d backfill.completed events", n)
	}
}

// TestApplicationMailboxRepairedMidBackfill: an operator terminates a
// mailbox's workflow while its backfill child runs (taking the child down
// with it); RepairMailbox takes it up from before the child started, the
// backfill resumes from the committed cursors, and the mailbox is whole.
func TestApplicationMailboxRepairedMidBackfill(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrg(t, graphsim.Options{}, workflows.Options{PollEvery: time.Minute, PageSize: 5})
	const inbox = 200
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, inbox)...); err != nil {
		t.Fatal(err)
	}
	budgetRunsOutAfterTwoPages(e)
	id := createDaemon(t, e, org, workflows.Selection{Include: []string{e.Ada.UPN}})
	ada := waitMailboxOf(t, e, id, e.Ada.UPN, "")
	child := workflows.MailboxWorkflowID(ada) + "/backfill/1"
	waitUntil(t, 60*time.Second, "the backfill child", func() bool {
		_, err := e.Temporal.DescribeWorkflowExecution(ctx, child, "")
		return err == nil
	})
	if err := e.Temporal.TerminateWorkflow(ctx, workflows.MailboxWorkflowID(ada), "", "operator"); err != nil {
		t.Fatal(err)
	}
	m, err := e.Store.GetMailbox(ctx, ada)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.RepairMailbox(ctx, m); err != nil {
		t.Fatalf("repair: %v", err)
	}
	if _, err := e.Connect.RepairMailbox(ctx, m); !errors.Is(err, connect.ErrWorkflowRunning) {
		t.Errorf("a second repair: %v, want ErrWorkflowRunning", err)
	}
	st := e.WaitForMailbox(ada, 120*time.Second, "backfilled after the repair", func(st workflows.Status) bool { return !st.Backfill.Completed.IsZero() })
	if n, err := e.Store.CountMessagesOf(ctx, []string{ada}); err != nil || n[ada] != inbox {
		t.Errorf("%d of %d messages stored (%v)", n[ada], inbox, err)
	}
	if st.State != workflows.StateActive || st.Backfill.LastError != "" {
		t.Errorf("after the repair: %s, backfill %+v", st.State, st.Backfill)
	}
}

// TestApplicationConnectionTerminated: an operator terminates an
// application connection's workflow. Its mailboxes go on syncing (their
// workflows are their own); Repair takes the connection up again, and it
// keeps discovering; terminated again, a disconnect cleans everything up
// from the registry: every mailbox detached, its secret gone from Vault.
func TestApplicationConnectionTerminated(t *testing.T) {
	ctx := context.Background()
	e, org := enginetest.StartOrg(t, graphsim.Options{}, workflows.Options{PollEvery: time.Second})
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, make([]graphsim.MessageSpec, 4)...); err != nil {
		t.Fatal(err)
	}
	id := createDaemon(t, e, org, workflows.Selection{Shared: true})
	ada := waitMailboxOf(t, e, id, e.Ada.UPN, store.DirSyncing)
	waitUntil(t, 60*time.Second, "ada's mail", func() bool {
		n, err := e.Store.CountMessagesOf(ctx, []string{ada})
		return err == nil && n[ada] == 4
	})
	terminate := func() {
		t.Helper()
		if err := e.Temporal.TerminateWorkflow(ctx, workflows.ConnectionWorkflowID(id), "", "operator"); err != nil {
			t.Fatal(err)
		}
	}
	terminate()
	// The mailboxes sync on.
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "while the connection is down"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "ada's mail while the connection is down", func() bool {
		n, err := e.Store.CountMessagesOf(ctx, []string{ada})
		return err == nil && n[ada] == 5
	})
	row, err := e.Store.GetConnection(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.Repair(ctx, row); err != nil {
		t.Fatalf("repair: %v", err)
	}
	// It discovers again: a newcomer's mailbox starts.
	newcomer, err := e.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: "newcomer@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := update(ctx, e, id, workflows.UpdateDiscover); err != nil {
		t.Fatal(err)
	}
	waitMailboxOf(t, e, id, newcomer.UPN, store.DirSyncing)

	terminate()
	if row, err = e.Store.GetConnection(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Connect.Disconnect(ctx, row); err != nil {
		t.Fatalf("disconnect of the terminated connection: %v", err)
	}
	e.WaitFor(id, 60*time.Second, "disconnected", func(st workflows.Status) bool { return st.State == workflows.StateDisconnected })
	if ids, err := e.Store.LiveMailboxIDs(ctx, id, "", 10); err != nil || len(ids) != 0 {
		t.Errorf("mailboxes left after the disconnect: %v %v", ids, err)
	}
	if n, _ := e.Store.CountMessagesOf(ctx, []string{ada}); n[ada] != 0 {
		t.Errorf("ada's mail kept after a disconnect with retention delete: %d", n[ada])
	}
	if n, _ := e.Vault.Tokens().Count(ctx, id); n != 0 {
		t.Errorf("%d secrets left in Vault", n)
	}
	// Every mailbox workflow has ended (as visibility, a moment behind, says).
	waitUntil(t, 30*time.Second, "every workflow of the connection ended", func() bool {
		resp, err := e.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: fmt.Sprintf("ConnectionId = %q AND ExecutionStatus = 'Running'", id)})
		return err == nil && len(resp.GetExecutions()) == 0
	})
}

// createDaemon creates an application connection with graphsim's daemon
// app over the users sel selects, their mail deleted when they leave.
func createDaemon(t *testing.T, e *enginetest.Engine, org *simtest.Org, sel workflows.Selection) string {
	t.Helper()
	id, err := e.Connect.CreateApplication(context.Background(), connect.AppRequest{OrgID: "org-1", OwnerID: "admin",
		Settings:      workflows.Settings{Features: workflows.Features{Read: true}, Retention: workflows.RetentionDelete},
		Selection:     sel,
		Credential:    identity.AppCredential{Tenant: org.Tenant.Tenant.ID, ClientID: org.Daemon.ClientID, Secret: org.Daemon.Secrets[0].Value},
		SecretExpires: time.Now().Add(90 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// mailboxOf is the mailbox ID the connection's directory gives upn, when
// the user is in status (any status when ""); "" when none.
func mailboxOf(t *testing.T, e *enginetest.Engine, id, upn, status string) string {
	t.Helper()
	users, err := e.Store.ListDirectoryUsers(context.Background(), id, "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Address == upn && (status == "" || u.Status == status) {
			return u.MailboxID
		}
	}
	return ""
}

// waitMailboxOf waits until the directory gives upn a mailbox in status.
func waitMailboxOf(t *testing.T, e *enginetest.Engine, id, upn, status string) string {
	t.Helper()
	var mbx string
	waitUntil(t, 60*time.Second, upn+"'s mailbox", func() bool {
		mbx = mailboxOf(t, e, id, upn, status)
		return mbx != ""
	})
	return mbx
}

// budgetRunsOutAfterTwoPages makes every reading of the activities' clock
// 20 s later than the one before, so a backfill activity's 45 s budget
// runs out after about two pages.
func budgetRunsOutAfterTwoPages(e *enginetest.Engine) {
	var skew atomic.Int64
	e.Acts.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Add(int64(20 * time.Second)))) }
}
