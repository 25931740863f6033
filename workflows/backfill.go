package workflows

import (
	"math"
	"time"

	"go.temporal.io/sdk/workflow"
)

// BackfillWorkflowName is the name the Backfill workflow is registered
// under (its function's).
const BackfillWorkflowName = "Backfill"

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
	// Every folder's progress, with its total, is shown from the start.
	upfront := workflow.GetVersion(ctx, "backfill-progress-upfront", workflow.DefaultVersion, 1) == 1 && in.ParentID != "" && len(found.Folders) > 0
	// Progress is told by one sender, which the pages never wait for
	// (backfill-progress-batched): what the folders report while a signal is
	// under way goes in the next one.
	batched := workflow.GetVersion(ctx, "backfill-progress-batched", workflow.DefaultVersion, 1) == 1 && in.ParentID != ""
	if upfront {
		all := make([]FolderProgress, 0, len(found.Folders))
		for _, f := range found.Folders {
			all = append(all, FolderProgress{ID: f.ID, Name: f.Name, Total: f.Total})
		}
		sig := workflow.SignalExternalWorkflow(ctx, in.ParentID, "", SignalBackfillProgress, BackfillProgress{Run: in.Run, Folders: all})
		if batched {
			workflow.Go(ctx, func(gctx workflow.Context) {
				if err := sig.Get(gctx, nil); err != nil {
					log.Warn("progress signal", "err", err)
				}
			})
		} else if err := sig.Get(ctx, nil); err != nil {
			log.Warn("progress signal", "err", err)
		}
	}
	var pending []FolderProgress
	if batched {
		workflow.Go(ctx, func(gctx workflow.Context) {
			for {
				if workflow.Await(gctx, func() bool { return len(pending) > 0 }) != nil {
					return
				}
				batch := pending
				pending = nil
				// The parent applies the updates in order: a folder's later
				// progress wins. Those still unsent when the backfill ends
				// are superseded by its result.
				if err := workflow.SignalExternalWorkflow(gctx, in.ParentID, "", SignalBackfillProgress, BackfillProgress{Run: in.Run, Updates: batch}).Get(gctx, nil); err != nil {
					log.Warn("progress signal", "err", err)
				}
			}
		})
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
				p := FolderProgress{ID: f.ID, Name: f.Name, Total: f.Total, Fetched: in.Fetched[f.ID]}
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
					switch {
					case batched:
						pending = append(pending, p)
					case in.ParentID != "":
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

// estimate sums a running backfill's folders up: what was fetched, of
// what total, and when it should end at the pace since it began.
func estimate(b BackfillState, now time.Time) *BackfillEstimate {
	e := &BackfillEstimate{}
	for _, f := range b.Folders {
		e.Fetched += f.Fetched
		if f.Done {
			e.Total += f.Fetched
		} else {
			e.Total += max(f.Total, f.Fetched)
		}
	}
	if e.Total > 0 {
		e.Percent = math.Round(1000*float64(e.Fetched)/float64(e.Total)) / 10
	}
	if e.Fetched > 0 && !b.Started.IsZero() && now.After(b.Started) {
		elapsed := now.Sub(b.Started)
		left := time.Duration(float64(elapsed) * float64(e.Total-e.Fetched) / float64(e.Fetched))
		e.EstimatedEnd = now.Add(left).Truncate(time.Second)
	}
	return e
}
