package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
)

// RawBackfill pages a folder's first delta round and merges each page, with
// the same query, page size and store as BackfillFolder but none of the
// engine around it. It is the baseline the backfill benchmark compares the
// engine with, and returns how many messages it stored.
func RawBackfill(ctx context.Context, gc *graph.Client, st *store.Store, connectionID, userID, folderID string, window time.Time, pageSize int) (int, error) {
	delta := gc.Users().ByUserId(userID).MailFolders().ByMailFolderId(folderID).Messages().Delta()
	filter := "receivedDateTime ge " + window.UTC().Format(time.RFC3339)
	cfg := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{
		Headers:         preferHeaders(pageSize),
		QueryParameters: &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{Filter: &filter, Select: selectFor(false), Expand: []string{attachmentExpand}},
	}
	b := delta
	total := 0
	for {
		page, err := b.GetAsDeltaGetResponse(ctx, cfg)
		if err != nil {
			return total, fmt.Errorf("baseline page: %w", err)
		}
		p := store.Page{FolderID: folderID, Phase: store.PhaseBackfill}
		p.Messages, p.Removed = convert(page.GetValue(), folderID)
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
		cfg = &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: preferHeaders(pageSize)}
	}
}
