package activities

import (
	"context"
	"strings"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.temporal.io/sdk/activity"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// contactClause is the $filter clause that finds a contact's mail: as its
// sender, or among its To or Cc recipients, in one request
// (docs/graph.md#filtering-messages-by-address). Exchange compares the
// addresses without regard to case.
func contactClause(address string) string {
	lit := "'" + strings.ReplaceAll(address, "'", "''") + "'"
	return "(from/emailAddress/address eq " + lit +
		" or toRecipients/any(r:r/emailAddress/address eq " + lit + ")" +
		" or ccRecipients/any(r:r/emailAddress/address eq " + lit + "))"
}

// FetchContactMail fetches the past mail of up to Batch contacts whose
// past mail was not yet fetched: in every synced folder, within the
// folder's window, one filtered list (sender, To or Cc), page by page. The
// messages merge like a page (filtered to the contacts, no cursor moves);
// the contacts are marked fetched after their mail is written, so a retry
// fetches them again rather than missing them. A folder deleted at
// Microsoft meanwhile is skipped (live sync drops it).
func (a *Activities) FetchContactMail(ctx context.Context, in workflows.FetchContactMailInput) (workflows.FetchContactMailResult, error) {
	var res workflows.FetchContactMailResult
	key := storeKey(in.ConnectionID, in.MailboxID)
	batch, err := a.Store.UnfetchedContacts(ctx, key, max(in.Batch, 1))
	if err != nil {
		return res, err
	}
	if len(batch) > 0 {
		gc, err := a.graphFor(ctx, in.ConnectionID, in.UserID)
		if err != nil {
			return res, err
		}
		if err := a.fetchContacts(ctx, gc, in, key, batch, &res); err != nil {
			return res, err
		}
	}
	counts, err := a.Store.CountContacts(ctx, key)
	if err != nil {
		return res, err
	}
	res.Remaining = counts.Unfetched
	return res, nil
}

// fetchContacts fetches the past mail of a batch of contacts from every
// folder of the mailbox (key) and marks them fetched.
func (a *Activities) fetchContacts(ctx context.Context, gc *graph.Client, in workflows.FetchContactMailInput, key string, batch []string, res *workflows.FetchContactMailResult) error {
	folders, err := a.Store.ListFolders(ctx, key)
	if err != nil {
		return err
	}
	var hb *heartbeat
	if activity.IsActivity(ctx) {
		var stop func()
		hb, stop = startHeartbeat(ctx)
		defer stop()
	}
	for _, addr := range batch {
		for _, f := range folders {
			err := a.fetchFiltered(ctx, gc, in, key, f, contactClause(addr), res)
			if isFolderGone(err) {
				continue // deleted at Microsoft: live sync drops it
			}
			if err != nil {
				return err
			}
			if hb != nil {
				hb.record(*res)
			}
		}
	}
	if err := a.Store.MarkContactsFetched(ctx, key, batch); err != nil {
		return err
	}
	res.Contacts += int64(len(batch))
	return nil
}

// fetchFiltered pages one folder's messages within its window that match
// a clause, merging each page.
func (a *Activities) fetchFiltered(ctx context.Context, gc *graph.Client, in workflows.FetchContactMailInput, key string, f store.Folder, clause string, res *workflows.FetchContactMailResult) error {
	msgs := gc.Users().ByUserId(in.UserID).MailFolders().ByMailFolderId(f.ID).Messages()
	cursor := ""
	pol := policyOf(in.StoreBodies, in.Bodies)
	for {
		cfg := &users.ItemMailFoldersItemMessagesRequestBuilderGetRequestConfiguration{Headers: preferHeaders(0)}
		b := msgs
		if cursor != "" {
			b = msgs.WithUrl(cursor)
		} else {
			top := int32(max(in.PageSize, 1))
			filter := "receivedDateTime ge " + f.WindowStart.UTC().Format(time.RFC3339) + " and " + clause
			cfg.QueryParameters = &users.ItemMailFoldersItemMessagesRequestBuilderGetQueryParameters{
				Filter: &filter, Top: &top, Select: pol.selectList(), Expand: pol.expand(),
			}
		}
		page, err := b.Get(ctx, cfg)
		res.Requests++
		if err != nil {
			return classifyGraph("contact mail page", err)
		}
		found, _ := convert(page.GetValue(), f.ID)
		pol.apply(found)
		n, err := a.Store.MergeMessages(ctx, key, found, true)
		if err != nil {
			return classifyStore(err)
		}
		res.Messages += int64(n)
		next := page.GetOdataNextLink()
		if next == nil {
			return nil
		}
		cursor = *next
	}
}

// ApplyContactFilter deletes the mail of a mailbox from or to none of its
// contacts (its contact filter was switched on).
func (a *Activities) ApplyContactFilter(ctx context.Context, in workflows.ContactFilterInput) (workflows.ContactFilterResult, error) {
	n, err := a.Store.DeleteUnmatchedMail(ctx, storeKey(in.ConnectionID, in.MailboxID))
	if err != nil {
		return workflows.ContactFilterResult{}, classifyStore(err)
	}
	return workflows.ContactFilterResult{Deleted: n}, nil
}
