package activities

import (
	"context"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// DiscoverFolders resolves the root folders (well-known names or IDs) and
// walks their child folders, recording all of them in the store.
func (a *Activities) DiscoverFolders(ctx context.Context, in workflows.DiscoverFoldersInput) (workflows.DiscoverFoldersResult, error) {
	gc, err := a.graphFor(ctx, in.ConnectionID, in.UserID)
	if err != nil {
		return workflows.DiscoverFoldersResult{}, err
	}
	return a.discoverFolders(ctx, gc, in)
}

// discoverFolders is DiscoverFolders' work, through gc. The roots are
// read side by side (within the mailbox's budget, which queues any beyond
// its concurrency), and a folder's children are listed only when Graph
// counts some (childFolderCount): most roots have none, and a mailbox's
// folders are then known in one round of requests instead of two rounds
// of one request after another.
func (a *Activities) discoverFolders(ctx context.Context, gc *graph.Client, in workflows.DiscoverFoldersInput) (workflows.DiscoverFoldersResult, error) {
	box := gc.Users().ByUserId(in.UserID)
	roots := make([]models.MailFolderable, len(in.Roots))
	g, gctx := errgroup.WithContext(ctx)
	for i, root := range in.Roots {
		g.Go(func() error {
			f, err := box.MailFolders().ByMailFolderId(root).Get(gctx, nil)
			if ge, ok := graph.AsError(err); ok && ge.Status == 404 {
				// A root the mailbox does not have (a well-known folder
				// some mailboxes lack, or a folder ID deleted since): the
				// others proceed, and the connection says which is missing.
				return nil
			}
			if err != nil {
				return classifyGraph("read folder "+root, err)
			}
			roots[i] = f
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return workflows.DiscoverFoldersResult{}, err
	}
	var out []workflows.FolderRef
	seen := map[string]bool{}
	var queue []string
	var missing []string
	add := func(f models.MailFolderable, wellKnown string) {
		ref := folderRef(f)
		ref.WellKnown = wellKnown
		if seen[ref.ID] {
			return
		}
		seen[ref.ID] = true
		out = append(out, ref)
		if n := f.GetChildFolderCount(); n == nil || *n > 0 {
			queue = append(queue, ref.ID)
		}
	}
	for i, root := range in.Roots {
		if roots[i] == nil {
			missing = append(missing, root)
			continue
		}
		wellKnown := ""
		if isWellKnown(root) {
			wellKnown = root
		}
		add(roots[i], wellKnown)
	}
	top := int32(100)
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		cfg := &users.ItemMailFoldersItemChildFoldersRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemMailFoldersItemChildFoldersRequestBuilderGetQueryParameters{Top: &top},
		}
		page, err := box.MailFolders().ByMailFolderId(id).ChildFolders().Get(ctx, cfg)
		for {
			if err != nil {
				return workflows.DiscoverFoldersResult{}, classifyGraph("list child folders", err)
			}
			for _, f := range page.GetValue() {
				add(f, "")
			}
			next := page.GetOdataNextLink()
			if next == nil {
				break
			}
			page, err = box.MailFolders().ByMailFolderId(id).ChildFolders().WithUrl(*next).Get(ctx, nil)
		}
	}
	rows := make([]store.Folder, len(out))
	for i, f := range out {
		rows[i] = store.Folder{ID: f.ID, ParentID: f.ParentID, DisplayName: f.Name, WellKnown: f.WellKnown}
	}
	if err := a.Store.UpsertFolders(ctx, storeKey(in.ConnectionID, in.MailboxID), rows, in.WindowStart); err != nil {
		return workflows.DiscoverFoldersResult{}, err
	}
	// Folders synced before and no longer under a root (the settings
	// changed, or the folder was deleted at Microsoft) are dropped with
	// their mail: the store mirrors the folders the settings name.
	keep := make([]string, len(out))
	for i, f := range out {
		keep[i] = f.ID
	}
	dropped, err := a.Store.PruneFolders(ctx, storeKey(in.ConnectionID, in.MailboxID), keep)
	if err != nil {
		return workflows.DiscoverFoldersResult{}, err
	}
	return workflows.DiscoverFoldersResult{Folders: out, Missing: missing, Dropped: dropped}, nil
}

func folderRef(f models.MailFolderable) workflows.FolderRef {
	return workflows.FolderRef{ID: deref(f.GetId()), ParentID: deref(f.GetParentFolderId()), Name: deref(f.GetDisplayName()),
		Total: int64(derefInt(f.GetTotalItemCount()))}
}

func isWellKnown(name string) bool {
	switch name {
	case "inbox", "sentitems", "archive", "drafts", "deleteditems", "junkemail", "outbox", "conversationhistory", "msgfolderroot":
		return true
	}
	return false
}
