package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// Backfill pages the connection's folders over the window, a few folders at
// a time, each resumable from the cursor committed with its last page, and
// tells its parent how far each folder got. Its own history stays small:
// one activity per folder per budget. A folder deleted at Microsoft while
// it runs is dropped, not a failure.
func Backfill(ctx workflow.Context, in BackfillInput) (BackfillResult, error) {
	log := workflow.GetLogger(ctx)
	found, err := discoverFolders.run(ctx, DiscoverFoldersInput{
		ConnectionID: in.ConnectionID, MailboxID: in.MailboxID, UserID: in.UserID, Roots: in.Roots, WindowStart: in.WindowStart,
	})
	if err != nil {
		return BackfillResult{}, err
	}
	page := backfillFolder
	page.opts = backfillPage(in.HeartbeatTimeout)
	concurrency := max(in.Concurrency, 1)
	results := make([]FolderProgress, len(found.Folders))
	gone := make([]bool, len(found.Folders))
	var firstErr error
	running, next := 0, 0
	for next < len(found.Folders) || running > 0 {
		for running < concurrency && next < len(found.Folders) && firstErr == nil {
			i, f := next, found.Folders[next]
			next++
			running++
			workflow.Go(ctx, func(gctx workflow.Context) {
				defer func() { running-- }()
				p := FolderProgress{ID: f.ID, Name: f.Name}
				for {
					r, err := page.run(gctx, BackfillFolderInput{
						ConnectionID: in.ConnectionID, MailboxID: in.MailboxID, UserID: in.UserID, FolderID: f.ID, WindowStart: in.WindowStart,
						StoreBodies: in.StoreBodies, ContactFilter: in.ContactFilter, Bodies: in.Bodies, PageSize: in.PageSize, Budget: folderBudget,
					})
					if err != nil {
						if firstErr == nil {
							firstErr = err
						}
						return
					}
					if r.Gone {
						gone[i] = true
						return
					}
					p.Fetched += r.Fetched
					p.Done = r.Done
					results[i] = p
					if in.ParentID != "" {
						if err := workflow.SignalExternalWorkflow(gctx, in.ParentID, "", SignalBackfillProgress, BackfillProgress{Run: in.Run, Folder: p}).Get(gctx, nil); err != nil {
							log.Warn("progress signal", "err", err)
						}
					}
					if r.Done {
						return
					}
				}
			})
		}
		if err := workflow.Await(ctx, func() bool {
			return running < concurrency && next < len(found.Folders) && firstErr == nil || running == 0
		}); err != nil {
			// Cancelled: wait for the folders under way to stop, so nothing
			// is written once the backfill has ended.
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			_ = workflow.Await(dctx, func() bool { return running == 0 })
			return BackfillResult{}, err
		}
		if firstErr != nil && running == 0 {
			return BackfillResult{}, firstErr
		}
	}
	out := BackfillResult{Missing: found.Missing}
	for i, r := range results {
		if gone[i] {
			out.Gone = append(out.Gone, found.Folders[i].ID)
			continue
		}
		out.Folders = append(out.Folders, r)
		out.Fetched += r.Fetched
	}
	return out, nil
}
