package activities

import (
	"context"
	"slices"
	"strings"
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

// A contact's past mail is found in every synced folder, as sender, To or
// Cc recipient, within the window, page by page through graphsim, and
// stored exactly as the filtered ground truth; no folder's cursor moves.
func TestFetchContactsPastMailAgainstGraphsim(t *testing.T) {
	ctx := context.Background()
	sim := simtest.Start(t, graphsim.Options{})
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	now := time.Now().UTC()
	window := now.Add(-10 * 24 * time.Hour)
	ann := graphsim.Recipient{Address: "Ann@Fabrikam.example"}
	zed := graphsim.Recipient{Address: "zed@fabrikam.example"}
	me := graphsim.Recipient{Address: sim.Ada.UPN}
	var specs []graphsim.MessageSpec
	for i := range 9 {
		at := now.Add(-time.Duration(i) * 24 * time.Hour)
		specs = append(specs,
			graphsim.MessageSpec{Subject: "from ann", Received: at, From: ann, To: []graphsim.Recipient{me}},
			graphsim.MessageSpec{Subject: "cc ann", Received: at, From: zed, To: []graphsim.Recipient{me}, Cc: []graphsim.Recipient{ann}},
			graphsim.MessageSpec{Subject: "zed only", Received: at, From: zed, To: []graphsim.Recipient{me}},
		)
	}
	specs = append(specs,
		graphsim.MessageSpec{Subject: "too old", Received: now.Add(-20 * 24 * time.Hour), From: ann, To: []graphsim.Recipient{me}},
		graphsim.MessageSpec{Subject: "to ann", Folder: "sentitems", Received: now.Add(-time.Hour), From: me, To: []graphsim.Recipient{zed, ann}},
		graphsim.MessageSpec{Subject: "archived", Folder: "archive", Received: now.Add(-time.Hour), From: ann, To: []graphsim.Recipient{me}},
	)
	if _, err := sim.Ctl.InjectMessages(ctx, sim.Ada.UPN, specs...); err != nil {
		t.Fatal(err)
	}
	truth, err := sim.Ctl.GroundTruth(ctx, sim.Ada.UPN)
	if err != nil {
		t.Fatal(err)
	}
	var folders []store.Folder
	synced := map[string]bool{}
	for _, f := range truth.Folders {
		if f.WellKnown == "inbox" || f.WellKnown == "sentitems" {
			folders = append(folders, store.Folder{ID: f.ID, DisplayName: f.DisplayName, WellKnown: f.WellKnown})
			synced[f.ID] = true
		}
	}
	var want []string
	for _, m := range truth.Messages {
		match := strings.EqualFold(m.From.Address, ann.Address)
		for _, r := range append(append([]graphsim.Recipient(nil), m.To...), m.Cc...) {
			match = match || strings.EqualFold(r.Address, ann.Address)
		}
		if match && synced[m.FolderID] && !m.Received.Before(window) {
			want = append(want, m.ImmutableID)
		}
	}
	slices.Sort(want)
	if len(want) != 19 {
		t.Fatalf("the filtered truth has %d messages, want 19", len(want))
	}

	id := "conn_fetch_" + now.Format("150405.000000")
	if err := st.CreateConnection(ctx, store.Connection{ID: id, OrgID: "o", OwnerID: "u", State: "active", Mode: "delegated"}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertFolders(ctx, id, folders, window); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddContacts(ctx, id, []store.Contact{{Address: "ann@fabrikam.example"}}, false); err != nil {
		t.Fatal(err)
	}
	tok := sim.SignIn(t, sim.Ada.UPN, "offline_access", "Mail.Read")
	gc, err := graph.NewClient(graph.Config{BaseURL: sim.Sim.GraphURL()}, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st}
	in := workflows.FetchContactMailInput{ConnectionID: id, UserID: sim.Ada.ID, Bodies: workflows.BodiesNone, PageSize: 4, Batch: 25}
	var res workflows.FetchContactMailResult
	if err := a.fetchContacts(ctx, gc, in, id, []string{"ann@fabrikam.example"}, &res); err != nil {
		t.Fatal(err)
	}
	msgs, err := st.Messages(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		got = append(got, m.ID)
		if m.BodyPreview != "" || m.Body != nil {
			t.Errorf("bodies=none stored content: %+v", m)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("stored %d messages, want the %d of the filtered truth", len(got), len(want))
	}
	// Two folders, one list each, in pages of 4: the inbox's 18 take 5.
	if res.Contacts != 1 || res.Messages != 19 || res.Requests != 5+1 {
		t.Errorf("result %+v", res)
	}
	if c, _ := st.CountContacts(ctx, id); c.Unfetched != 0 {
		t.Errorf("the contact still waits: %+v", c)
	}
	after, _ := st.ListFolders(ctx, id)
	for _, f := range after {
		if f.Cursor != "" || f.Phase != store.PhaseBackfill {
			t.Errorf("folder %s moved: %+v", f.ID, f)
		}
	}
}
