package activities

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// A mailbox's mailboxSettings are read from graphsim and kept at the first
// round, not read again before the interval, and read again after it
// (automatic replies turned on meanwhile).
func TestRefreshGraphSettingsAgainstGraphsim(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	tenant := org.Tenant.Tenant.ID
	u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: tenant, UPN: "away@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	tz := "W. Europe Standard Time"
	if err := org.Ctl.SetMailboxSettings(ctx, u.UPN, graphsim.MailboxSettingsUpdate{TimeZone: &tz}); err != nil {
		t.Fatal(err)
	}
	tok, err := org.AppTokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	gc, err := graph.NewClient(graph.Config{BaseURL: org.Sim.GraphURL()}, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().UTC().Format("150405.000000")
	conn, mbx := "conn_mset_"+stamp, "mbx_mset_"+stamp
	if err := st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AttachMailbox(ctx, store.Mailbox{ID: mbx, ConnectionID: conn, Address: u.UPN, UserID: u.ID, State: "active", Settings: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a := &Activities{Store: st, Now: func() time.Time { return now }}
	in := workflows.SyncFoldersInput{ConnectionID: conn, MailboxID: mbx, UserID: u.ID, MailboxSettingsEvery: time.Hour}
	read := func() (GraphSettings, time.Time) {
		t.Helper()
		m, err := st.GetMailbox(ctx, mbx)
		if err != nil || m.GraphSettingsReadAt == nil {
			t.Fatalf("settings not kept: %+v %v", m, err)
		}
		var gs GraphSettings
		if err := json.Unmarshal(m.GraphSettings, &gs); err != nil {
			t.Fatal(err)
		}
		return gs, *m.GraphSettingsReadAt
	}
	a.refreshGraphSettings(ctx, gc, in)
	gs, first := read()
	if gs.TimeZone != tz || gs.AutomaticReplies == nil || gs.AutomaticReplies.Status != "disabled" || gs.Language == "" {
		t.Errorf("first read: %+v %+v", gs, gs.AutomaticReplies)
	}
	start, end := time.Now().Add(time.Hour).UTC().Truncate(time.Second), time.Now().Add(48*time.Hour).UTC().Truncate(time.Second)
	if err := org.Ctl.SetMailboxSettings(ctx, u.UPN, graphsim.MailboxSettingsUpdate{AutomaticReplies: &graphsim.AutomaticReplies{
		Status: "scheduled", ExternalAudience: "all", InternalReplyMessage: "Away until Tuesday", ScheduledStart: start, ScheduledEnd: end}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Minute)
	a.refreshGraphSettings(ctx, gc, in)
	if gs, at := read(); !at.Equal(first) || gs.AutomaticReplies.Status != "disabled" {
		t.Errorf("read again before the interval: %v %+v", at, gs.AutomaticReplies)
	}
	now = now.Add(time.Hour)
	a.refreshGraphSettings(ctx, gc, in)
	gs, at := read()
	ar := gs.AutomaticReplies
	if !at.After(first) || ar.Status != "scheduled" || ar.InternalMessage != "Away until Tuesday" || ar.ExternalAudience != "all" ||
		ar.ScheduledStart == nil || !ar.ScheduledStart.Equal(start) || ar.ScheduledEnd == nil || !ar.ScheduledEnd.Equal(end) {
		t.Errorf("after the interval: %v %+v", at, ar)
	}
}
