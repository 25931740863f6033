package activities

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
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

// countingTransport counts the Graph requests by path.
type countingTransport struct {
	mu    sync.Mutex
	paths []string
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths = append(c.paths, r.URL.Path)
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) childListings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.paths {
		if strings.HasSuffix(p, "/childFolders") {
			n++
		}
	}
	return n
}

// TestDiscoverFoldersAgainstGraphsim: a mailbox's folders are found under
// each root, children and grandchildren included, a root the mailbox does
// not have is reported missing and the others proceed, and children are
// listed only of the folders Graph counts some under.
func TestDiscoverFoldersAgainstGraphsim(t *testing.T) {
	ctx := context.Background()
	org := simtest.StartOrg(t, graphsim.Options{})
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	u, err := org.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: org.Tenant.Tenant.ID, UPN: "folders@contoso.example"})
	if err != nil {
		t.Fatal(err)
	}
	projects, err := org.Ctl.CreateFolder(ctx, u.UPN, "inbox", "Projects")
	if err != nil {
		t.Fatal(err)
	}
	year, err := org.Ctl.CreateFolder(ctx, u.UPN, projects, "2026")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := org.AppTokenSource().Token()
	if err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().UTC().Format("150405.000000")
	conn, mbx := "conn_fold_"+stamp, "mbx_fold_"+stamp
	if err := st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "o", OwnerID: "admin", State: "active", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AttachMailbox(ctx, store.Mailbox{ID: mbx, ConnectionID: conn, Address: u.UPN, UserID: u.ID, State: "active", Settings: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	a := &Activities{Store: st}
	tests := []struct {
		name         string
		roots        []string
		wantNames    []string
		wantMissing  []string
		wantListings int
	}{
		{"a root without children is not listed", []string{"sentitems"}, []string{"Sent Items"}, nil, 0},
		{"children and grandchildren", []string{"inbox"}, []string{"Inbox", "Projects", "2026"}, nil, 2},
		{"a missing root, the others proceed", []string{"inbox", "nosuchfolder", "sentitems"}, []string{"Inbox", "Sent Items", "Projects", "2026"}, []string{"nosuchfolder"}, 2},
		{"a folder named twice is found once", []string{"inbox", projects}, []string{"Inbox", "Projects", "2026"}, nil, 2},
		{"a child as a root", []string{year}, []string{"2026"}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct := &countingTransport{}
			gc, err := graph.NewClient(graph.Config{BaseURL: org.Sim.GraphURL(), Transport: ct}, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.discoverFolders(ctx, gc, workflows.DiscoverFoldersInput{ConnectionID: conn, MailboxID: mbx, UserID: u.ID,
				Roots: tt.roots, WindowStart: time.Now().Add(-30 * 24 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range got.Folders {
				names = append(names, f.Name)
			}
			if !slices.Equal(names, tt.wantNames) || !slices.Equal(got.Missing, tt.wantMissing) {
				t.Errorf("folders %v missing %v, want %v and %v", names, got.Missing, tt.wantNames, tt.wantMissing)
			}
			if n := ct.childListings(); n != tt.wantListings {
				t.Errorf("%d child folder listings, want %d", n, tt.wantListings)
			}
			if got.Folders[0].WellKnown != map[bool]string{true: tt.roots[0], false: ""}[isWellKnown(tt.roots[0])] {
				t.Errorf("first folder's well-known name %q", got.Folders[0].WellKnown)
			}
		})
	}
}
