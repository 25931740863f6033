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
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	graphgroups "github.com/microsoftgraph/msgraph-sdk-go/groups"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
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
	directoryConcurrency   = 32
	directoryUsersPageSize = 200
)

// DiscoverPage reads the next pages of the tenant's /users/delta
// (docs/graph.md#users-delta), up to in.Pages of them (one if not set) for
// up to discoverPagesBudget, and records, for every user each names,
// whether its mailbox is to be synced, and why not; each page and the link
// to follow next are written in one transaction, so a batch cut short
// resumes from its last page.
func (a *Activities) DiscoverPage(ctx context.Context, in workflows.DiscoverPageInput) (workflows.DiscoverPageResult, error) {
	conn, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if err != nil {
		return workflows.DiscoverPageResult{}, err
	}
	gc, err := a.directoryFor(ctx, in.ConnectionID, conn.TenantID)
	if err != nil {
		return workflows.DiscoverPageResult{}, err
	}
	var res workflows.DiscoverPageResult
	deadline := a.now().Add(discoverPagesBudget)
	for range max(in.Pages, 1) {
		page, err := a.discoverOnePage(ctx, gc, in)
		res.Users += page.Users
		res.RoundDone, res.Restarted = page.RoundDone, page.Restarted
		if err != nil || page.RoundDone || page.Restarted || a.now().After(deadline) {
			return res, err
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, res.Users)
		}
	}
	return res, nil
}

// discoverPagesBudget bounds how long one DiscoverPage keeps reading
// pages: the workflow hears of the round's progress at least this often.
const discoverPagesBudget = 20 * time.Second

// discoverOnePage reads the page the directory's link names and records
// it with the link to follow next, in one transaction.
func (a *Activities) discoverOnePage(ctx context.Context, gc *graph.Client, in workflows.DiscoverPageInput) (workflows.DiscoverPageResult, error) {
	link, _, err := a.Store.DirectoryLink(ctx, in.ConnectionID)
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
	var members map[string]bool
	if len(in.Selection.Groups) > 0 {
		var ids []string
		for _, u := range page.GetValue() {
			ids = append(ids, deref(u.GetId()))
		}
		if members, err = a.Store.GroupMembers(ctx, in.ConnectionID, ids); err != nil {
			return workflows.DiscoverPageResult{}, classifyStore(err)
		}
	}
	changes, err := a.classifyUsers(ctx, a.mailboxGraph(in.ConnectionID), in, page.GetValue(), members)
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
// members are the users of the page who are members of the selection's
// groups; mailboxGraph gives the client that reads a user's mailbox.
func (a *Activities) classifyUsers(ctx context.Context, mailboxGraph func(ctx context.Context, userID string) (*graph.Client, error),
	in workflows.DiscoverPageInput, us []models.Userable, members map[string]bool) ([]store.DirectoryChange, error) {
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
		if reason := selectionRefuses(in.Selection, members[id], id, c.Address, strings.ToLower(deref(u.GetUserPrincipalName()))); reason != "" {
			c.Reason = reason
			out[i] = c
			continue
		}
		enabled := u.GetAccountEnabled() == nil || *u.GetAccountEnabled()
		g.Go(func() error {
			err := classifyMailbox(gctx, mailboxGraph, in, &c, enabled)
			mu.Lock()
			out[i] = c
			done++
			if done%20 == 0 && activity.IsActivity(ctx) {
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

// mailboxGraph gives a connection's clients for its users' mailboxes,
// each on the mailbox's budget.
func (a *Activities) mailboxGraph(connectionID string) func(ctx context.Context, userID string) (*graph.Client, error) {
	return func(ctx context.Context, userID string) (*graph.Client, error) {
		return a.graphFor(ctx, connectionID, userID)
	}
}

func classifyMailbox(ctx context.Context, mailboxGraph func(ctx context.Context, userID string) (*graph.Client, error), in workflows.DiscoverPageInput,
	c *store.DirectoryChange, enabled bool) error {
	gc, err := mailboxGraph(ctx, c.UserID)
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

// selectionRefuses is why the selection leaves a user out, if it does;
// member says whether the user is a member of the selection's groups.
func selectionRefuses(s workflows.Selection, member bool, ids ...string) string {
	match := func(list []string) bool {
		return slices.ContainsFunc(list, func(x string) bool {
			return slices.ContainsFunc(ids, func(id string) bool { return id != "" && strings.EqualFold(x, id) })
		})
	}
	switch {
	case match(s.Exclude):
		return ExcludedBySelection
	case member || match(s.Include):
		return ""
	case len(s.Include) > 0 || len(s.Groups) > 0:
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
// leaving one whose mailbox is already detached is recorded left. With
// in.Prefilled, a join is listed once its mailbox was backfilled ahead of
// its workflow, with that backfill when it was done whole.
func (a *Activities) MailboxChanges(ctx context.Context, in workflows.MailboxChangesInput) (workflows.MailboxChangesResult, error) {
	var res workflows.MailboxChangesResult
	conn, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if err != nil {
		return res, err
	}
	pending, held, err := a.Store.PendingDirectoryUsers(ctx, in.ConnectionID, in.Limit, in.Prefilled)
	if err != nil {
		return res, err
	}
	res.Held = held
	res.Changes = []workflows.MailboxChange{}
	for _, u := range pending {
		ch := workflows.MailboxChange{UserID: u.UserID, MailboxID: u.MailboxID, Address: u.Address, DisplayName: u.DisplayName,
			Join: u.Status == store.DirJoining, Reason: u.Reason}
		if ch.Join && in.Prefilled {
			if ch.Backfilled, err = handedOver(u.Prefill); err != nil {
				return res, fmt.Errorf("the backfill of mailbox %s done ahead of its workflow: %w", u.MailboxID, err)
			}
		}
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

// groupReadPermission is the least privileged application permission that
// reads a group's members (https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers).
const groupReadPermission = "GroupMember.Read.All"

// ErrGroupsUnreadable is the type of a DiscoverGroups error Graph's
// refusal caused (the permission withdrawn, a group deleted): the round
// waits and tries again, the reason in the discovery's last error.
const ErrGroupsUnreadable = "GroupsUnreadable"

// groupMembers reads the users who are members, directly or through
// nested groups, of every group (/groups/{id}/transitiveMembers/microsoft.graph.user).
func groupMembers(ctx context.Context, gc *graph.Client, groups []string) ([]string, error) {
	var ids []string
	top := int32(999)
	for _, g := range groups {
		b := gc.Groups().ByGroupId(g).TransitiveMembers().GraphUser()
		page, err := b.Get(ctx, &graphgroups.ItemTransitiveMembersGraphUserRequestBuilderGetRequestConfiguration{
			QueryParameters: &graphgroups.ItemTransitiveMembersGraphUserRequestBuilderGetQueryParameters{Top: &top, Select: []string{"id"}}})
		for {
			if err != nil {
				return nil, groupError(g, err)
			}
			for _, u := range page.GetValue() {
				ids = append(ids, deref(u.GetId()))
			}
			next := page.GetOdataNextLink()
			if next == nil || *next == "" {
				break
			}
			page, err = b.WithUrl(*next).Get(ctx, nil)
		}
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, g)
		}
	}
	return ids, nil
}

// groupError says why a group could not be read: the permission missing
// (403 Authorization_RequestDenied) or the group unknown (404), each with
// what to change; other errors as any Graph call's.
func groupError(group string, err error) error {
	ge, ok := graph.AsError(err)
	switch {
	case ok && ge.Status == 403:
		return &identity.AppError{Reason: identity.AppPermissionMissing, Missing: []string{groupReadPermission},
			Text: "Graph refused to list the members of group " + group + " (" + ge.Code + "): grant the application permission " +
				groupReadPermission + " (or Group.Read.All) and admin consent."}
	case ok && ge.Status == 404:
		return &identity.AppError{Reason: identity.AppGroupNotFound,
			Text: "The tenant has no group " + group + ": give the group's object ID, on its Overview page in Entra."}
	}
	return classifyGraph("group members", err)
}

// DiscoverGroups reads the selected groups' members again at the start
// of a discovery round and compares them with the last read: a known
// user who came in is classified again (its mailbox may join), one who
// went out and is not listed by Include leaves (not_selected). Users the
// directory does not know yet come with /users/delta, which consults the
// members recorded here.
func (a *Activities) DiscoverGroups(ctx context.Context, in workflows.DiscoverGroupsInput) (workflows.DiscoverGroupsResult, error) {
	conn, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if err != nil {
		return workflows.DiscoverGroupsResult{}, err
	}
	gc, err := a.directoryFor(ctx, in.ConnectionID, conn.TenantID)
	if err != nil {
		return workflows.DiscoverGroupsResult{}, err
	}
	return a.discoverGroups(ctx, gc, a.mailboxGraph(in.ConnectionID), in)
}

func (a *Activities) discoverGroups(ctx context.Context, gc *graph.Client, mailboxGraph func(ctx context.Context, userID string) (*graph.Client, error),
	in workflows.DiscoverGroupsInput) (workflows.DiscoverGroupsResult, error) {
	var res workflows.DiscoverGroupsResult
	ids, err := groupMembers(ctx, gc, in.Selection.Groups)
	var ae *identity.AppError
	if errors.As(err, &ae) {
		return res, temporal.NewNonRetryableApplicationError(ae.Text, ErrGroupsUnreadable, err, reasonDetail{Reason: string(ae.Reason), Text: ae.Text})
	}
	if err != nil {
		return res, err
	}
	res.Members = len(ids)
	added, removed, err := a.Store.ReplaceGroupMembers(ctx, in.ConnectionID, ids)
	if err != nil {
		return res, classifyStore(err)
	}
	changed := append(slices.Clone(added), removed...)
	if len(changed) == 0 {
		return res, nil
	}
	known, err := a.Store.KnownDirectoryUsers(ctx, in.ConnectionID, changed)
	if err != nil {
		return res, classifyStore(err)
	}
	members := map[string]bool{}
	for _, id := range ids {
		members[id] = true
	}
	var again []models.Userable
	var changes []store.DirectoryChange
	for _, id := range changed {
		u, ok := known[id]
		if !ok || u.Status == store.DirLeft {
			continue
		}
		if members[id] {
			if u.Reason != ExcludedNotSelected {
				continue // excluded for another reason, or already synced
			}
			usr, err := gc.Users().ByUserId(id).Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
				QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: strings.Split(usersDeltaSelect, ",")}})
			if ge, ok := graph.AsError(err); ok && ge.Status == 404 {
				continue // deleted since: /users/delta says so
			}
			if err != nil {
				return res, classifyGraph("user", err)
			}
			again = append(again, usr)
			res.Joined++
			continue
		}
		if reason := selectionRefuses(in.Selection, members[id], id, u.Address); reason != "" &&
			(u.Status == store.DirJoining || u.Status == store.DirSyncing) {
			changes = append(changes, store.DirectoryChange{UserID: id, Address: u.Address, DisplayName: u.DisplayName, Shared: u.Shared, Reason: reason})
			res.Left++
		}
	}
	if len(again) > 0 {
		cs, err := a.classifyUsers(ctx, mailboxGraph, workflows.DiscoverPageInput{ConnectionID: in.ConnectionID, Selection: in.Selection}, again, members)
		if err != nil {
			return res, err
		}
		changes = append(changes, cs...)
	}
	if err := a.Store.ApplyDirectoryChanges(ctx, in.ConnectionID, changes); err != nil {
		return res, classifyStore(err)
	}
	return res, nil
}
