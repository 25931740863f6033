package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// folderBudget is how long one BackfillFolder activity pages before it
// reports progress and yields.
const folderBudget = 45 * time.Second

// Backfill pages the connection's folders over the window, a few folders at
// a time, each resumable from the cursor committed with its last page, and
// tells its parent how far each folder got. Its own history stays small:
// one activity per folder per budget.
func Backfill(ctx workflow.Context, in BackfillInput) (BackfillResult, error) {
	log := workflow.GetLogger(ctx)
	discover := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: []string{ErrReauthRequired, ErrGraphRejected}},
	})
	var found DiscoverFoldersResult
	if err := workflow.ExecuteActivity(discover, ActivityDiscoverFolders, DiscoverFoldersInput{
		ConnectionID: in.ConnectionID, UserID: in.UserID, Roots: in.Roots, WindowStart: in.WindowStart,
	}).Get(ctx, &found); err != nil {
		return BackfillResult{}, err
	}
	page := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: folderBudget + 2*time.Minute,
		HeartbeatTimeout:    cmpOr(in.HeartbeatTimeout, time.Minute),
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: []string{ErrReauthRequired, ErrGraphRejected}},
	})
	concurrency := max(in.Concurrency, 1)
	results := make([]FolderProgress, len(found.Folders))
	var firstErr error
	running := 0
	next := 0
	for next < len(found.Folders) || running > 0 {
		for running < concurrency && next < len(found.Folders) && firstErr == nil {
			i, f := next, found.Folders[next]
			next++
			running++
			workflow.Go(ctx, func(gctx workflow.Context) {
				defer func() { running-- }()
				p := FolderProgress{ID: f.ID, Name: f.Name}
				for {
					var r BackfillFolderResult
					err := workflow.ExecuteActivity(page, ActivityBackfillFolder, BackfillFolderInput{
						ConnectionID: in.ConnectionID, UserID: in.UserID, FolderID: f.ID, WindowStart: in.WindowStart,
						PreviousStart: in.PreviousStart, StoreBodies: in.StoreBodies, PageSize: in.PageSize, Budget: folderBudget,
					}).Get(gctx, &r)
					if err != nil {
						if firstErr == nil {
							firstErr = err
						}
						return
					}
					p.Fetched += r.Fetched
					p.Done = r.Done
					results[i] = p
					if in.ParentID != "" {
						if err := workflow.SignalExternalWorkflow(gctx, in.ParentID, "", SignalBackfillProgress, BackfillProgress{Folder: p}).Get(gctx, nil); err != nil {
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
			return BackfillResult{}, err
		}
		if firstErr != nil && running == 0 {
			return BackfillResult{}, firstErr
		}
	}
	out := BackfillResult{Folders: results}
	for _, r := range results {
		out.Fetched += r.Fetched
	}
	return out, nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
