package activities

import (
	"context"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

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

// discoverFolders is DiscoverFolders' work, through gc.
func (a *Activities) discoverFolders(ctx context.Context, gc *graph.Client, in workflows.DiscoverFoldersInput) (workflows.DiscoverFoldersResult, error) {
	box := gc.Users().ByUserId(in.UserID)
	var out []workflows.FolderRef
	seen := map[string]bool{}
	var queue []string
	var missing []string
	for _, root := range in.Roots {
		f, err := box.MailFolders().ByMailFolderId(root).Get(ctx, nil)
		if ge, ok := graph.AsError(err); ok && ge.Status == 404 {
			// A root the mailbox does not have (a well-known folder some
			// mailboxes lack, or a folder ID deleted since): the others
			// proceed, and the connection says which is missing.
			missing = append(missing, root)
			continue
		}
		if err != nil {
			return workflows.DiscoverFoldersResult{}, classifyGraph("read folder "+root, err)
		}
		ref := folderRef(f)
		if isWellKnown(root) {
			ref.WellKnown = root
		}
		if !seen[ref.ID] {
			seen[ref.ID] = true
			out = append(out, ref)
			queue = append(queue, ref.ID)
		}
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
				ref := folderRef(f)
				if !seen[ref.ID] {
					seen[ref.ID] = true
					out = append(out, ref)
					queue = append(queue, ref.ID)
				}
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
