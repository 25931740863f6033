package activities

import (
	"context"
	"errors"
	"strconv"
	"time"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// messageSelect are the properties outlookd stores (body only by policy).
var messageSelect = []string{"id", "parentFolderId", "internetMessageId", "conversationId", "changeKey", "subject",
	"from", "toRecipients", "ccRecipients", "bccRecipients", "receivedDateTime", "sentDateTime", "isRead", "isDraft",
	"categories", "importance", "hasAttachments", "bodyPreview"}

// attachmentExpand brings attachment metadata along with each message.
const attachmentExpand = "attachments($select=id,name,contentType,size,isInline)"

func selectFor(bodies bool) []string {
	if bodies {
		return append(append([]string(nil), messageSelect...), "body")
	}
	return messageSelect
}

// preferHeaders are sent on every request, page after page: immutable IDs
// (so moves keep identity) and the page size (docs/graph.md#immutable-ids, docs/graph.md#delta-queries,
// docs/graph.md#paging-and-delta-in-go).
func preferHeaders(pageSize int) *abs.RequestHeaders {
	h := abs.NewRequestHeaders()
	h.Add("Prefer", `IdType="ImmutableId"`)
	if pageSize > 0 {
		h.Add("Prefer", "odata.maxpagesize="+strconv.Itoa(pageSize))
	}
	return h
}

// BackfillFolder brings one folder to the window, for up to the budget:
// a folder not yet live pages its first delta round, filtered to the
// window; a live folder whose window starts later has the gap before it
// fetched. Each page is merged into the store in the same transaction that
// advances the folder's cursor, so a killed worker resumes from the last
// committed page; the round's deltaLink becomes the anchor live sync
// continues from. A folder deleted at Microsoft is dropped with its mail
// and reported Gone.
func (a *Activities) BackfillFolder(ctx context.Context, in workflows.BackfillFolderInput) (workflows.BackfillFolderResult, error) {
	gc, err := a.graphFor(ctx, in.ConnectionID, in.UserID)
	if err != nil {
		return workflows.BackfillFolderResult{}, err
	}
	hb, stop := startHeartbeat(ctx)
	defer stop()
	return a.backfillFolder(ctx, hb, gc, in)
}

// BackfillMailbox backfills a whole mailbox in one activity, for up to the
// budget: its folders discovered and recorded (as DiscoverFolders does),
// then paged side by side, in.Concurrency at once, each as BackfillFolder
// pages it, until every folder is done or the budget has run out. A
// mailbox of a few hundred messages is so backfilled by one activity; a
// larger one reports how far each folder got, and the workflow goes on
// folder by folder from the cursors the pages committed.
func (a *Activities) BackfillMailbox(ctx context.Context, in workflows.BackfillMailboxInput) (workflows.BackfillMailboxResult, error) {
	// One client, and so one read of the token, for every request.
	gc, err := a.graphFor(ctx, in.ConnectionID, in.UserID)
	if err != nil {
		return workflows.BackfillMailboxResult{}, err
	}
	hb, stop := startHeartbeat(ctx)
	defer stop()
	return a.backfillMailbox(ctx, hb, gc, in)
}

// backfillMailbox is BackfillMailbox's work, through gc, heartbeating
// through hb.
func (a *Activities) backfillMailbox(ctx context.Context, hb *heartbeat, gc *graph.Client, in workflows.BackfillMailboxInput) (workflows.BackfillMailboxResult, error) {
	deadline := a.now().Add(in.Budget)
	found, err := a.discoverFolders(ctx, gc, workflows.DiscoverFoldersInput{
		ConnectionID: in.ConnectionID, MailboxID: in.MailboxID, UserID: in.UserID, Roots: in.Roots, WindowStart: in.WindowStart,
	})
	if err != nil {
		return workflows.BackfillMailboxResult{}, err
	}
	results := make([]workflows.BackfillFolderResult, len(found.Folders))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(in.Concurrency, 1))
	for i, f := range found.Folders {
		g.Go(func() error {
			left := deadline.Sub(a.now())
			if left <= 0 {
				return nil // not begun: the workflow goes on with it
			}
			r, err := a.backfillFolder(gctx, hb, gc, workflows.BackfillFolderInput{
				ConnectionID: in.ConnectionID, MailboxID: in.MailboxID, UserID: in.UserID, FolderID: f.ID, WindowStart: in.WindowStart,
				StoreBodies: in.StoreBodies, ContactFilter: in.ContactFilter, Bodies: in.Bodies, PageSize: in.PageSize, Budget: left,
			})
			results[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return workflows.BackfillMailboxResult{}, err
	}
	out := workflows.BackfillMailboxResult{Done: true}
	out.Missing = found.Missing
	for i, f := range found.Folders {
		r := results[i]
		if r.Gone {
			out.Gone = append(out.Gone, f.ID)
			continue
		}
		out.Folders = append(out.Folders, workflows.FolderProgress{ID: f.ID, Name: f.Name, Total: f.Total, Fetched: r.Fetched, Done: r.Done})
		out.Fetched += r.Fetched
		out.Done = out.Done && r.Done
	}
	return out, nil
}

// backfillFolder is BackfillFolder's work, through gc, heartbeating
// through hb.
func (a *Activities) backfillFolder(ctx context.Context, hb *heartbeat, gc *graph.Client, in workflows.BackfillFolderInput) (workflows.BackfillFolderResult, error) {
	f, err := a.Store.GetFolder(ctx, storeKey(in.ConnectionID, in.MailboxID), in.FolderID)
	if err != nil {
		return workflows.BackfillFolderResult{}, err
	}
	var res workflows.BackfillFolderResult
	switch {
	case f.Phase != store.PhaseLive:
		res, err = a.firstRound(ctx, hb, gc, f, in)
	case f.WindowStart.After(in.WindowStart):
		res, err = a.backfillGap(ctx, hb, gc, f, in)
	default:
		res.Done = true
	}
	if isFolderGone(err) {
		if _, err := a.Store.RemoveFolder(ctx, storeKey(in.ConnectionID, in.MailboxID), in.FolderID); err != nil {
			return res, err
		}
		activity.GetLogger(ctx).Warn("folder deleted at Microsoft; dropped", "folder", in.FolderID)
		return workflows.BackfillFolderResult{Gone: true, Done: true}, nil
	}
	return res, err
}

// firstRound pages a folder's first delta round over the window. When the
// round ends and the folder's window starts after the one asked (a resumed
// round begun for a narrower window), the result is not Done: the next
// call fetches the gap.
func (a *Activities) firstRound(ctx context.Context, hb *heartbeat, gc *graph.Client, f store.Folder, in workflows.BackfillFolderInput) (workflows.BackfillFolderResult, error) {
	var res workflows.BackfillFolderResult
	pol := policyOf(in.StoreBodies, in.Bodies)
	deadline := a.now().Add(in.Budget)
	delta := gc.Users().ByUserId(in.UserID).MailFolders().ByMailFolderId(in.FolderID).Messages().Delta()
	cursor := f.Cursor
	for {
		b := delta
		cfg := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: preferHeaders(in.PageSize)}
		if cursor != "" {
			b = delta.WithUrl(cursor)
		} else {
			filter := "receivedDateTime ge " + f.WindowStart.UTC().Format(time.RFC3339)
			cfg.QueryParameters = &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{
				Filter: &filter, Select: pol.selectList(), Expand: pol.expand(),
			}
		}
		page, err := b.GetAsDeltaGetResponse(ctx, cfg)
		if err != nil {
			if ge, ok := graph.AsError(err); ok && ge.SyncStateLost() && cursor != "" {
				// The round's skip token expired (a long pause): start the
				// round again; the merge is idempotent.
				activity.GetLogger(ctx).Warn("backfill round restarted", "folder", in.FolderID, "err", err)
				cursor = ""
				continue
			}
			return res, classifyGraph("backfill page", err)
		}
		p := store.Page{FolderID: in.FolderID, Phase: store.PhaseBackfill, ContactFilter: in.ContactFilter}
		p.Messages, p.Removed = convert(page.GetValue(), in.FolderID)
		pol.apply(p.Messages)
		switch {
		case page.GetOdataDeltaLink() != nil:
			p.Cursor, p.Phase, res.Done = *page.GetOdataDeltaLink(), store.PhaseLive, !f.WindowStart.After(in.WindowStart)
		case page.GetOdataNextLink() != nil:
			p.Cursor = *page.GetOdataNextLink()
		default:
			return res, classifyGraph("backfill page", errNoLink)
		}
		stop, err := a.commit(ctx, hb, storeKey(in.ConnectionID, in.MailboxID), p, &res, deadline)
		if stop || p.Phase == store.PhaseLive || err != nil {
			return res, err
		}
		cursor = p.Cursor
	}
}

// isFolderGone says whether an activity's error is a folder deleted at
// Microsoft.
func isFolderGone(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == workflows.ErrFolderGone
}

// commit writes a page with its cursor, books it in the result and the
// heartbeat, and says whether to stop: done, or out of budget.
func (a *Activities) commit(ctx context.Context, hb *heartbeat, connectionID string, p store.Page, res *workflows.BackfillFolderResult, deadline time.Time) (bool, error) {
	if err := a.Store.ApplyPage(ctx, connectionID, p); err != nil {
		return true, classifyStore(err)
	}
	res.Pages++
	res.Fetched += int64(len(p.Messages))
	hb.record(*res)
	return res.Done || a.now().After(deadline), nil
}

type linkError struct{}

func (linkError) Error() string { return "a delta page with neither nextLink nor deltaLink" }

var errNoLink = linkError{}

// backfillGap lists the messages received between the new window start and
// the one already covered, page by page with its own cursor.
func (a *Activities) backfillGap(ctx context.Context, hb *heartbeat, gc *graph.Client, f store.Folder, in workflows.BackfillFolderInput) (workflows.BackfillFolderResult, error) {
	var res workflows.BackfillFolderResult
	if !f.WindowStart.After(in.WindowStart) {
		res.Done = true
		return res, nil
	}
	pol := policyOf(in.StoreBodies, in.Bodies)
	deadline := a.now().Add(in.Budget)
	msgs := gc.Users().ByUserId(in.UserID).MailFolders().ByMailFolderId(in.FolderID).Messages()
	cursor := f.GapCursor
	for {
		cfg := &users.ItemMailFoldersItemMessagesRequestBuilderGetRequestConfiguration{Headers: preferHeaders(0)}
		b := msgs
		if cursor != "" {
			b = msgs.WithUrl(cursor)
		} else {
			top := int32(max(in.PageSize, 1))
			filter := "receivedDateTime ge " + in.WindowStart.UTC().Format(time.RFC3339) + " and receivedDateTime lt " + f.WindowStart.UTC().Format(time.RFC3339)
			cfg.QueryParameters = &users.ItemMailFoldersItemMessagesRequestBuilderGetQueryParameters{
				Filter: &filter, Orderby: []string{"receivedDateTime desc"}, Top: &top,
				Select: pol.selectList(), Expand: pol.expand(),
			}
		}
		page, err := b.Get(ctx, cfg)
		if err != nil {
			return res, classifyGraph("gap page", err)
		}
		p := store.Page{FolderID: in.FolderID, Gap: true, WindowStart: in.WindowStart, ContactFilter: in.ContactFilter}
		p.Messages, _ = convert(page.GetValue(), in.FolderID)
		pol.apply(p.Messages)
		if next := page.GetOdataNextLink(); next != nil {
			p.Cursor = *next
		} else {
			p.GapDone, res.Done = true, true
		}
		stop, err := a.commit(ctx, hb, storeKey(in.ConnectionID, in.MailboxID), p, &res, deadline)
		if stop || err != nil {
			return res, err
		}
		cursor = p.Cursor
	}
}

// convert maps Graph messages to store rows and collects removals.
func convert(items []models.Messageable, folderID string) ([]store.Message, []string) {
	msgs := make([]store.Message, 0, len(items))
	var removed []string
	for _, m := range items {
		if _, gone := m.GetAdditionalData()["@removed"]; gone {
			removed = append(removed, deref(m.GetId()))
			continue
		}
		sm := store.Message{
			ID: deref(m.GetId()), FolderID: deref(m.GetParentFolderId()), InternetMessageID: deref(m.GetInternetMessageId()),
			ConversationID: deref(m.GetConversationId()), ChangeKey: deref(m.GetChangeKey()), Subject: deref(m.GetSubject()),
			From: recipient(m.GetFrom()), To: recipients(m.GetToRecipients()), Cc: recipients(m.GetCcRecipients()), Bcc: recipients(m.GetBccRecipients()),
			IsRead: derefBool(m.GetIsRead()), IsDraft: derefBool(m.GetIsDraft()), Categories: m.GetCategories(),
			HasAttachments: derefBool(m.GetHasAttachments()), BodyPreview: deref(m.GetBodyPreview()),
		}
		if sm.FolderID == "" {
			sm.FolderID = folderID
		}
		if t := m.GetReceivedDateTime(); t != nil {
			sm.Received = t.UTC()
		}
		if t := m.GetSentDateTime(); t != nil {
			sm.Sent = t.UTC()
		}
		if imp := m.GetImportance(); imp != nil {
			sm.Importance = imp.String()
		}
		if body := m.GetBody(); body != nil {
			if ct := body.GetContentType(); ct != nil {
				sm.BodyContentType = ct.String()
			}
			sm.Body = body.GetContent()
		}
		for _, att := range m.GetAttachments() {
			sm.Attachments = append(sm.Attachments, store.Attachment{
				ID: deref(att.GetId()), Name: deref(att.GetName()), ContentType: deref(att.GetContentType()),
				Size: int64(derefInt(att.GetSize())), IsInline: derefBool(att.GetIsInline()),
			})
		}
		msgs = append(msgs, sm)
	}
	return msgs, removed
}

func recipient(r models.Recipientable) store.Recipient {
	if r == nil || r.GetEmailAddress() == nil {
		return store.Recipient{}
	}
	return store.Recipient{Name: deref(r.GetEmailAddress().GetName()), Address: deref(r.GetEmailAddress().GetAddress())}
}

func recipients(rs []models.Recipientable) []store.Recipient {
	out := make([]store.Recipient, 0, len(rs))
	for _, r := range rs {
		out = append(out, recipient(r))
	}
	return out
}

func derefBool(b *bool) bool { return b != nil && *b }

func derefInt(i *int32) int32 {
	if i == nil {
		return 0
	}
	return *i
}
