package activities

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"go.temporal.io/sdk/activity"
	"golang.org/x/sync/errgroup"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Reasons a directory user's mailbox is not synced
// (docs/application.md#excluded-mailboxes).
const (
	ExcludedNoMailbox      = "no_mailbox"
	ExcludedAccessPolicy   = "access_policy"
	ExcludedShared         = "shared_not_selected"
	ExcludedDisabled       = "account_disabled"
	ExcludedNotSelected    = "not_selected"
	ExcludedBySelection    = "excluded_by_selection"
	ExcludedMailboxTaken   = "mailbox_taken"
	LeftDeleted            = "user_deleted"
	usersDeltaSelect       = "id,displayName,mail,userPrincipalName,accountEnabled"
	directoryConcurrency   = 8
	directoryUsersPageSize = 200
)

// DiscoverPage reads the next page of the tenant's /users/delta
// (docs/graph.md#users-delta) and records, for every user it names,
// whether its mailbox is to be synced, and why not; the page and the link
// to follow next are written in one transaction.
func (a *Activities) DiscoverPage(ctx context.Context, in workflows.DiscoverPageInput) (workflows.DiscoverPageResult, error) {
	link, _, err := a.Store.DirectoryLink(ctx, in.ConnectionID)
	if err != nil {
		return workflows.DiscoverPageResult{}, err
	}
	conn, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if err != nil {
		return workflows.DiscoverPageResult{}, err
	}
	gc, err := a.directoryFor(ctx, in.ConnectionID, conn.TenantID)
	if err != nil {
		return workflows.DiscoverPageResult{}, err
	}
	delta := gc.Users().Delta()
	cfg := &users.DeltaRequestBuilderGetRequestConfiguration{}
	b := delta
	if link != "" {
		b = delta.WithUrl(link)
	} else {
		cfg.QueryParameters = &users.DeltaRequestBuilderGetQueryParameters{Select: strings.Split(usersDeltaSelect, ",")}
	}
	page, err := b.GetAsDeltaGetResponse(ctx, cfg)
	if err != nil {
		if ge, ok := graph.AsError(err); ok && link != "" && (ge.Status == 410 || ge.SyncStateLost()) {
			// The token expired: the next page starts a full round, which
			// lists every user again (joins and leaves are recomputed).
			activity.GetLogger(ctx).Warn("users delta token expired; listing the directory again", "connection", in.ConnectionID)
			return workflows.DiscoverPageResult{Restarted: true}, a.Store.ResetDirectoryLink(ctx, in.ConnectionID)
		}
		return workflows.DiscoverPageResult{}, classifyGraph("users delta", err)
	}
	changes, err := a.classifyUsers(ctx, gc, in, page.GetValue())
	if err != nil {
		return workflows.DiscoverPageResult{}, err
	}
	res := workflows.DiscoverPageResult{Users: len(changes)}
	next := ""
	switch {
	case page.GetOdataDeltaLink() != nil:
		next, res.RoundDone = *page.GetOdataDeltaLink(), true
	case page.GetOdataNextLink() != nil:
		next = *page.GetOdataNextLink()
	default:
		return res, classifyGraph("users delta", errNoLink)
	}
	if err := a.Store.ApplyDirectoryPage(ctx, in.ConnectionID, changes, next, res.RoundDone); err != nil {
		return res, classifyStore(err)
	}
	return res, nil
}

// classifyUsers decides, for each user of a page, whether its mailbox is
// synced: the selection first, then its mailbox settings, which say
// whether it has a mailbox at all (404 MailboxNotEnabledForRESTAPI),
// whether an application access policy keeps the app out (403), and
// whether it is a shared mailbox (userPurpose). A disabled account that is
// not a shared mailbox's leaves.
func (a *Activities) classifyUsers(ctx context.Context, gc *graph.Client, in workflows.DiscoverPageInput, us []models.Userable) ([]store.DirectoryChange, error) {
	out := make([]store.DirectoryChange, len(us))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(directoryConcurrency)
	var mu sync.Mutex
	done := 0
	for i, u := range us {
		id := deref(u.GetId())
		c := store.DirectoryChange{UserID: id, DisplayName: deref(u.GetDisplayName()), Address: strings.ToLower(deref(u.GetMail()))}
		if c.Address == "" {
			c.Address = strings.ToLower(deref(u.GetUserPrincipalName()))
		}
		if removed, ok := u.GetAdditionalData()["@removed"]; ok && removed != nil {
			c.Gone, c.Reason = true, LeftDeleted
			out[i] = c
			continue
		}
		if reason := selectionRefuses(in.Selection, id, c.Address, strings.ToLower(deref(u.GetUserPrincipalName()))); reason != "" {
			c.Reason = reason
			out[i] = c
			continue
		}
		enabled := u.GetAccountEnabled() == nil || *u.GetAccountEnabled()
		g.Go(func() error {
			err := a.classifyMailbox(gctx, in, &c, enabled)
			mu.Lock()
			out[i] = c
			done++
			if done%20 == 0 {
				activity.RecordHeartbeat(ctx, done)
			}
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range out {
		if out[i].Want {
			out[i].NewMailboxID = "mbx_" + randomID()
		}
	}
	return out, nil
}

func (a *Activities) classifyMailbox(ctx context.Context, in workflows.DiscoverPageInput, c *store.DirectoryChange, enabled bool) error {
	gc, err := a.graphFor(ctx, in.ConnectionID, c.UserID)
	if err != nil {
		return err
	}
	settings, err := gc.Users().ByUserId(c.UserID).MailboxSettings().Get(ctx, nil)
	if err != nil {
		ge, ok := graph.AsError(err)
		switch {
		case ok && ge.Status == 404 && (ge.HasCode("MailboxNotEnabledForRESTAPI") || ge.HasCode("MailboxNotSupportedForRESTAPI")):
			c.Reason = ExcludedNoMailbox
			return nil
		case ok && ge.Status == 404:
			// Deleted since the page listed it: it left.
			c.Gone, c.Reason = true, LeftDeleted
			return nil
		case ok && ge.Status == 403 && ge.HasCode("ErrorAccessDenied"):
			c.Reason = ExcludedAccessPolicy
			return nil
		}
		return classifyGraph("mailbox settings", err)
	}
	c.Shared = settings.GetUserPurpose() != nil && *settings.GetUserPurpose() == models.SHARED_USERPURPOSE
	switch {
	case c.Shared && !in.Selection.Shared:
		c.Reason = ExcludedShared
	case !c.Shared && !enabled:
		c.Reason = ExcludedDisabled
	default:
		c.Want = true
	}
	return nil
}

// selectionRefuses is why the selection leaves a user out, if it does.
func selectionRefuses(s workflows.Selection, ids ...string) string {
	match := func(list []string) bool {
		return slices.ContainsFunc(list, func(x string) bool {
			return slices.ContainsFunc(ids, func(id string) bool { return id != "" && strings.EqualFold(x, id) })
		})
	}
	switch {
	case match(s.Exclude):
		return ExcludedBySelection
	case len(s.Include) > 0 && !match(s.Include):
		return ExcludedNotSelected
	}
	return ""
}

func randomID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// MailboxChanges lists the joins and leaves the directory holds that the
// workflow has yet to apply. A joining user's mailbox is registered first
// (one another connection already syncs is excluded as mailbox_taken); a
// leaving one whose mailbox is already detached is recorded left.
func (a *Activities) MailboxChanges(ctx context.Context, in workflows.MailboxChangesInput) (workflows.MailboxChangesResult, error) {
	var res workflows.MailboxChangesResult
	conn, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if err != nil {
		return res, err
	}
	pending, err := a.Store.PendingDirectoryUsers(ctx, in.ConnectionID, in.Limit)
	if err != nil {
		return res, err
	}
	res.Changes = []workflows.MailboxChange{}
	for _, u := range pending {
		ch := workflows.MailboxChange{UserID: u.UserID, MailboxID: u.MailboxID, Address: u.Address, DisplayName: u.DisplayName,
			Join: u.Status == store.DirJoining, Reason: u.Reason}
		if ch.Join {
			err := a.Store.AttachMailbox(ctx, store.Mailbox{ID: u.MailboxID, ConnectionID: in.ConnectionID, Address: u.Address,
				UserID: u.UserID, DisplayName: u.DisplayName, State: workflows.StateActive, Settings: conn.Settings})
			if errors.Is(err, store.ErrMailboxTaken) {
				if err := a.Store.SetDirectoryStatus(ctx, in.ConnectionID, u.UserID, store.DirJoining, store.DirExcluded, ExcludedMailboxTaken); err != nil {
					return res, err
				}
				continue
			}
			if err != nil {
				return res, err
			}
			res.Changes = append(res.Changes, ch)
			continue
		}
		m, err := a.Store.GetMailbox(ctx, u.MailboxID)
		if errors.Is(err, store.ErrNotFound) || err == nil && m.State == workflows.StateDisconnected {
			if err := a.Store.SetDirectoryStatus(ctx, in.ConnectionID, u.UserID, store.DirLeaving, store.DirLeft, ""); err != nil {
				return res, err
			}
			continue
		}
		if err != nil {
			return res, err
		}
		res.Changes = append(res.Changes, ch)
	}
	return res, nil
}

// AckMailboxChanges records joins and leaves the workflow applied.
func (a *Activities) AckMailboxChanges(ctx context.Context, in workflows.AckMailboxChangesInput) error {
	for _, ch := range in.Changes {
		from, to := store.DirLeaving, store.DirLeft
		if ch.Join {
			from, to = store.DirJoining, store.DirSyncing
		}
		if err := a.Store.SetDirectoryStatus(ctx, in.ConnectionID, ch.UserID, from, to, ""); err != nil {
			return err
		}
	}
	return nil
}

// CloseDirectory records the directory's synced users left, once the
// connection's disconnect has detached their mailboxes.
func (a *Activities) CloseDirectory(ctx context.Context, in workflows.ConnectionRef) error {
	return a.Store.CloseDirectory(ctx, in.ConnectionID, workflows.ReasonDisconnected)
}

// LiveMailboxes pages a connection's mailboxes not yet detached.
func (a *Activities) LiveMailboxes(ctx context.Context, in workflows.LiveMailboxesInput) (workflows.LiveMailboxesResult, error) {
	ids, err := a.Store.LiveMailboxIDs(ctx, in.ConnectionID, in.After, in.Limit)
	if err != nil {
		return workflows.LiveMailboxesResult{}, fmt.Errorf("activities: %w", err)
	}
	if ids == nil {
		ids = []string{}
	}
	return workflows.LiveMailboxesResult{IDs: ids}, nil
}
