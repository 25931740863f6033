package activities

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.temporal.io/sdk/activity"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// SyncFolders runs one delta round for every live folder from its anchor:
// changes are merged and the new deltaLink saved in the same transaction,
// with the removals the folder reported; those are applied when every
// folder has been read (a message moved out of a folder is only deleted if
// it is still filed there, so a move is one update). An expired anchor (410) is re-anchored with a fresh
// round over the window, and what that round did not see is deleted, so
// nothing is lost or duplicated.
func (a *Activities) SyncFolders(ctx context.Context, in workflows.SyncFoldersInput) (workflows.SyncFoldersResult, error) {
	var res workflows.SyncFoldersResult
	// Folders asked for re-anchoring lose their anchors on every attempt:
	// a retry after the drop failed must not run a plain round instead
	// (the workflow counts the request done when this returns), and after
	// a drop that succeeded, dropping again only restarts the re-anchor.
	if len(in.Reanchor) > 0 {
		n, err := a.Store.DropAnchors(ctx, storeKey(in.ConnectionID, in.MailboxID), in.Reanchor)
		if err != nil {
			return res, err
		}
		res.Reanchored += int(n)
	}
	folders, err := a.Store.ListFolders(ctx, storeKey(in.ConnectionID, in.MailboxID))
	if err != nil {
		return res, err
	}
	gc, err := a.graphFor(ctx, in.ConnectionID, in.UserID)
	if err != nil {
		return res, err
	}
	var live []store.Folder
	for _, f := range folders {
		if f.Phase == store.PhaseLive {
			live = append(live, f)
		}
	}
	// Removals wait for the end of the round (store.Page.DeferRemovals):
	// Graph reports a move between two folders as a removal in one
	// folder's delta and an arrival in the other's. A move that a folder
	// reports removed may arrive in a folder read earlier in the round,
	// before the move: those folders are read again (a quiet folder costs
	// one request), at most twice, until a pass reports no new removal.
	// Then the removals are applied: a message filed elsewhere meanwhile
	// stays, and the app is told of one update with its new folder.
	pass := live
	for range 3 {
		last := -1
		for i, f := range pass {
			removed, err := a.syncLiveFolder(ctx, gc, in, f, &res)
			if err != nil {
				return res, err
			}
			if removed {
				last = i
			}
		}
		if last <= 0 {
			break
		}
		// Read again from the anchors the first reads saved; a folder
		// dropped meanwhile is not read again.
		var again []store.Folder
		for _, f := range pass[:last] {
			fresh, err := a.Store.GetFolder(ctx, storeKey(in.ConnectionID, in.MailboxID), f.ID)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return res, err
			}
			again = append(again, fresh)
		}
		pass = again
	}
	n, err := a.Store.ApplyRemovals(ctx, storeKey(in.ConnectionID, in.MailboxID))
	if err != nil {
		return res, classifyStore(err)
	}
	res.Removed += n
	a.refreshGraphSettings(ctx, gc, in)
	return res, nil
}

// syncLiveFolder runs a folder's delta round; a folder deleted at
// Microsoft is dropped with its mail. It says whether the folder's delta
// reported removals.
func (a *Activities) syncLiveFolder(ctx context.Context, gc *graph.Client, in workflows.SyncFoldersInput, f store.Folder, res *workflows.SyncFoldersResult) (bool, error) {
	before := res.Deferred
	err := a.syncFolder(ctx, gc, in, f, res)
	if isFolderGone(err) {
		// Deleted at Microsoft: drop it with its mail, and go on with the
		// other folders.
		n, err := a.Store.RemoveFolder(ctx, storeKey(in.ConnectionID, in.MailboxID), f.ID)
		if err != nil {
			return false, err
		}
		activity.GetLogger(ctx).Warn("folder deleted at Microsoft; dropped", "folder", f.ID, "messages", n)
		res.Removed += n
		res.Gone = append(res.Gone, workflows.FolderRef{ID: f.ID, ParentID: f.ParentID, Name: f.DisplayName, WellKnown: f.WellKnown})
		return false, nil
	}
	if err != nil {
		return false, err
	}
	activity.RecordHeartbeat(ctx, res)
	return res.Deferred > before, nil
}

func (a *Activities) syncFolder(ctx context.Context, gc *graph.Client, in workflows.SyncFoldersInput, f store.Folder, res *workflows.SyncFoldersResult) error {
	delta := gc.Users().ByUserId(in.UserID).MailFolders().ByMailFolderId(f.ID).Messages().Delta()
	cursor := f.Cursor
	// A live folder without an anchor was interrupted while re-anchoring:
	// re-anchor again. During a re-anchor, seen collects every ID returned.
	reanchor := cursor == ""
	pol := policyOf(in.StoreBodies, in.Bodies)
	seen := []string{}
	for {
		cfg := &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: preferHeaders(in.PageSize)}
		b := delta.WithUrl(cursor)
		if cursor == "" {
			b = delta
			filter := "receivedDateTime ge " + f.WindowStart.UTC().Format(time.RFC3339)
			cfg.QueryParameters = &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{
				Filter: &filter, Select: pol.selectList(), Expand: pol.expand(),
			}
		}
		page, err := b.GetAsDeltaGetResponse(ctx, cfg)
		if err != nil {
			if ge, ok := graph.AsError(err); ok && ge.SyncStateLost() && !reanchor {
				activity.GetLogger(ctx).Warn("delta token expired; re-anchoring", "folder", f.ID)
				reanchor, cursor, seen = true, "", []string{}
				res.Reanchored++
				continue
			}
			return classifyGraph("sync page", err)
		}
		p := store.Page{FolderID: f.ID, Phase: store.PhaseLive, Events: true, DeferRemovals: true, ContactFilter: in.ContactFilter}
		p.Messages, p.Removed = convert(page.GetValue(), f.ID)
		pol.apply(p.Messages)
		if reanchor {
			for _, m := range p.Messages {
				seen = append(seen, m.ID)
			}
		}
		done := false
		switch {
		case page.GetOdataDeltaLink() != nil:
			p.Cursor, done = *page.GetOdataDeltaLink(), true
		case page.GetOdataNextLink() != nil:
			// Mid-round pages keep the old anchor until the round ends, so
			// a crash replays the round rather than skipping its start.
			p.Cursor = f.Cursor
			if reanchor {
				p.Cursor = ""
			}
		default:
			return classifyGraph("sync page", errNoLink)
		}
		if done && reanchor {
			// Delete what the fresh round did not see, then save the anchor.
			n, err := a.Store.DeleteMissing(ctx, storeKey(in.ConnectionID, in.MailboxID), f.ID, f.WindowStart, seen)
			if err != nil {
				return err
			}
			res.Removed += n
		}
		if err := a.Store.ApplyPage(ctx, storeKey(in.ConnectionID, in.MailboxID), p); err != nil {
			return classifyStore(err)
		}
		res.Upserted += int64(len(p.Messages))
		res.Deferred += int64(len(p.Removed))
		if done {
			return nil
		}
		cursor = *page.GetOdataNextLink()
	}
}

// EnsureSubscription creates the connection's Graph subscription on the
// mailbox's messages, with a random clientState kept in Vault (and only its
// hash in Postgres). With Replace, known subscriptions are deleted first,
// so a connection (or a mailbox of an application connection) never has
// two. When Graph refuses (a mailbox that cannot be subscribed: an
// application access policy keeping the app out of it, a permission
// missing), it says why instead of failing: the mailbox is polled.
func (a *Activities) EnsureSubscription(ctx context.Context, in workflows.EnsureSubscriptionInput) (workflows.SubscriptionResult, error) {
	gc, err := a.graphFor(ctx, in.ConnectionID, in.UserID)
	if err != nil {
		return workflows.SubscriptionResult{}, err
	}
	if in.Replace {
		if err := a.deleteSubscriptions(ctx, gc, in.ConnectionID, in.MailboxID); err != nil {
			return workflows.SubscriptionResult{}, err
		}
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	clientState := base64.RawURLEncoding.EncodeToString(secret)
	if err := a.Tokens.PutClientState(ctx, in.ConnectionID, in.MailboxID, clientState); err != nil {
		return workflows.SubscriptionResult{}, err
	}
	sub := models.NewSubscription()
	ct, res := "created,updated,deleted", "users/"+in.UserID+"/messages"
	asked := a.now()
	exp := asked.Add(in.Lifetime)
	sub.SetChangeType(&ct)
	sub.SetResource(&res)
	sub.SetNotificationUrl(&in.NotificationURL)
	sub.SetLifecycleNotificationUrl(&in.LifecycleURL)
	sub.SetExpirationDateTime(&exp)
	sub.SetClientState(&clientState)
	created, err := gc.Subscriptions().Post(ctx, sub, nil)
	if err != nil {
		if ge, ok := graph.AsError(err); ok && (ge.Status == 403 || ge.Status == 400) {
			return workflows.SubscriptionResult{PollReason: ge.Code + ": " + ge.Message}, nil
		}
		return workflows.SubscriptionResult{}, classifyGraph("create subscription", err)
	}
	hash := sha256.Sum256([]byte(clientState))
	out := workflows.SubscriptionResult{ID: deref(created.GetId()), Expiration: *created.GetExpirationDateTime(), Requested: asked}
	if err := a.Store.SaveSubscription(ctx, store.Subscription{ID: out.ID, ConnectionID: in.ConnectionID, MailboxID: in.MailboxID,
		ClientStateHash: hash[:], Resource: res, ExpiresAt: out.Expiration}); err != nil {
		return workflows.SubscriptionResult{}, err
	}
	return out, nil
}

// RenewSubscription extends a subscription (which also reauthorizes it);
// a subscription Graph no longer has is reported Gone.
func (a *Activities) RenewSubscription(ctx context.Context, in workflows.RenewSubscriptionInput) (workflows.SubscriptionResult, error) {
	gc, err := a.graphFor(ctx, in.ConnectionID, "")
	if err != nil {
		return workflows.SubscriptionResult{}, err
	}
	sub := models.NewSubscription()
	asked := a.now()
	exp := asked.Add(in.Lifetime)
	sub.SetExpirationDateTime(&exp)
	renewed, err := gc.Subscriptions().BySubscriptionId(in.SubscriptionID).Patch(ctx, sub, nil)
	if err != nil {
		if ge, ok := graph.AsError(err); ok && ge.Status == 404 {
			_ = a.Store.DeleteSubscription(ctx, in.SubscriptionID)
			return workflows.SubscriptionResult{Gone: true}, nil
		}
		if ge, ok := graph.AsError(err); ok && ge.Status == 403 && in.MailboxID != "" {
			// An application access policy now keeps the app out of the
			// mailbox (or Mail.Read was revoked): Graph delivers nothing
			// more for it, and the subscription expires at Graph by
			// itself. The mailbox is polled.
			if err := a.Store.DeleteSubscription(ctx, in.SubscriptionID); err != nil {
				return workflows.SubscriptionResult{}, err
			}
			return workflows.SubscriptionResult{PollReason: ge.Code + ": " + ge.Message}, nil
		}
		return workflows.SubscriptionResult{}, classifyGraph("renew subscription", err)
	}
	out := workflows.SubscriptionResult{ID: in.SubscriptionID, Expiration: *renewed.GetExpirationDateTime(), Requested: asked}
	if s, err := a.Store.GetSubscription(ctx, in.SubscriptionID); err == nil {
		s.ExpiresAt = out.Expiration
		if err := a.Store.SaveSubscription(ctx, s); err != nil {
			return out, err
		}
	}
	return out, nil
}

// DeleteSubscriptions deletes every subscription of the connection (of
// one of its mailboxes, with MailboxID) at Graph (a 404 counts as done)
// and in the store.
func (a *Activities) DeleteSubscriptions(ctx context.Context, in workflows.ConnectionRef) error {
	gc, err := a.graphFor(ctx, in.ConnectionID, "")
	if err != nil {
		return err
	}
	return a.deleteSubscriptions(ctx, gc, in.ConnectionID, in.MailboxID)
}

func (a *Activities) deleteSubscriptions(ctx context.Context, gc *graph.Client, connectionID, mailboxID string) error {
	subs, err := a.Store.ListSubscriptions(ctx, connectionID, mailboxID)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if err := gc.Subscriptions().BySubscriptionId(s.ID).Delete(ctx, nil); err != nil {
			if ge, ok := graph.AsError(err); !ok || ge.Status != 404 {
				var tokenDead interface{ NonRetryable() bool }
				if errors.Is(err, vault.ErrNotFound) || errors.As(err, &tokenDead) && tokenDead.NonRetryable() {
					// Without tokens the subscription cannot be deleted; it
					// expires at Graph by itself and delivers to nobody.
					activity.GetLogger(ctx).Warn("subscription left to expire", "subscription", s.ID)
				} else {
					return classifyGraph("delete subscription", err)
				}
			}
		}
		if err := a.Store.DeleteSubscription(ctx, s.ID); err != nil {
			return err
		}
	}
	return nil
}

// PurgeSecrets deletes every token and secret of the connection from Vault.
func (a *Activities) PurgeSecrets(ctx context.Context, in workflows.ConnectionRef) (int, error) {
	a.tokenCache().Remove(in.ConnectionID)
	return a.Tokens.Purge(ctx, in.ConnectionID)
}

// ApplyRetention deletes the connection's mail, or keeps it detached.
func (a *Activities) ApplyRetention(ctx context.Context, in workflows.RetentionInput) error {
	key := storeKey(in.ConnectionID, in.MailboxID)
	if in.Policy == workflows.RetentionKeep {
		return a.Store.Detach(ctx, key)
	}
	_, err := a.Store.DeleteMail(ctx, key)
	return err
}

// RecordEvent records an event for the app (delivered by the API).
func (a *Activities) RecordEvent(ctx context.Context, in workflows.RecordEventInput) error {
	return a.Store.AddEvent(ctx, store.Event{ID: in.EventID, ConnectionID: in.ConnectionID, MailboxID: in.MailboxID, Type: in.Type, Data: in.Data})
}
