package connect_test

import (
	"context"
	"fmt"
	"time"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
)

// rawDeltaRound pages a folder's first delta round and merges each page,
// with the same query, page size and store as BackfillFolder but none of
// the engine around it. It is the baseline the backfill benchmark compares
// the engine with, and returns how many messages it stored.
func rawDeltaRound(ctx context.Context, gc *graph.Client, st *store.Store, connectionID, userID, folderID string, window time.Time, pageSize int) (int, error) {
	delta := gc.Users().ByUserId(userID).MailFolders().ByMailFolderId(folderID).Messages().Delta()
	cfg := activities.BackfillRequest(window, pageSize, false)
	b := delta
	total := 0
	for {
		page, err := b.GetAsDeltaGetResponse(ctx, cfg)
		if err != nil {
			return total, fmt.Errorf("baseline page: %w", err)
		}
		p := store.Page{FolderID: folderID, Phase: store.PhaseBackfill}
		p.Messages, p.Removed = activities.ConvertMessages(page.GetValue(), folderID)
		done := false
		if l := page.GetOdataDeltaLink(); l != nil {
			p.Cursor, p.Phase, done = *l, store.PhaseLive, true
		} else if l := page.GetOdataNextLink(); l != nil {
			p.Cursor = *l
		}
		if err := st.ApplyPage(ctx, connectionID, p); err != nil {
			return total, err
		}
		total += len(p.Messages)
		if done {
			return total, nil
		}
		b = delta.WithUrl(p.Cursor)
		cfg = activities.NextPageRequest(pageSize)
	}
}
