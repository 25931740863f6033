package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Reasons a mailbox cannot be attached or synced, beside the workflow's.
const (
	reasonMailboxNotFound   = "mailbox_not_found"
	reasonMailboxNotEnabled = "mailbox_not_enabled"
	reasonSharedNotGranted  = "shared_scope_not_granted"
)

// unreachable is the error of a mailbox the account cannot open, with the
// reason and a sentence saying what must change.
func unreachable(reason, text string, cause error) error {
	return temporal.NewNonRetryableApplicationError(text, workflows.ErrMailboxUnreachable, cause, reasonDetail{Reason: reason, Text: text})
}

// grantText says what an Exchange administrator runs so that account can
// open mailbox (docs/graph.md#mailbox-rights).
func grantText(account, mailbox string) string {
	return fmt.Sprintf("%s cannot open %s: an Exchange administrator must grant it Full Access to the mailbox "+
		"(Add-MailboxPermission -Identity %s -User %s -AccessRights FullAccess -AutoMapping $false).", account, mailbox, mailbox, account)
}

// CheckMailbox verifies that the connection's account can open a mailbox
// by reading its Inbox, before the mailbox is attached. A mailbox it cannot
// open is refused with the reason and what the Exchange administrator must
// grant.
func (a *Activities) CheckMailbox(ctx context.Context, in workflows.CheckMailboxInput) (workflows.CheckMailboxResult, error) {
	conn, err := a.Store.GetConnection(ctx, in.ConnectionID)
	if err != nil {
		return workflows.CheckMailboxResult{}, err
	}
	if conn.Mode != workflows.ModeApplication && (!identity.FeaturesOf(conn.GrantedScopes).Read || !grantedShared(conn.GrantedScopes)) {
		return workflows.CheckMailboxResult{}, unreachable(reasonSharedNotGranted,
			"The account did not grant Mail.Read.Shared (or Mail.ReadWrite.Shared), which opening another mailbox needs; sign it in again and accept it.", nil)
	}
	gc, err := a.graphFor(ctx, in.ConnectionID, in.Address)
	if err != nil {
		return workflows.CheckMailboxResult{}, err
	}
	_, err = gc.Users().ByUserId(in.Address).MailFolders().ByMailFolderId("inbox").Get(ctx, nil)
	if err == nil {
		return workflows.CheckMailboxResult{UserID: in.Address, Address: in.Address}, nil
	}
	return workflows.CheckMailboxResult{}, mailboxError(err, conn.Mailbox, in.Address)
}

// mailboxError classifies Graph's refusal to open another user's mailbox.
func mailboxError(err error, account, mailbox string) error {
	ge, ok := graph.AsError(err)
	switch {
	case !ok:
		return classifyGraph("open mailbox", err)
	case ge.Status == 403 && ge.HasCode("ErrorAccessDenied"):
		return unreachable(workflows.ReasonMailboxUnreachable, grantText(account, mailbox), err)
	case ge.Status == 404 && ge.HasCode("MailboxNotEnabledForRESTAPI"):
		return unreachable(reasonMailboxNotEnabled, mailbox+" has no Exchange Online mailbox (it is inactive, soft-deleted or hosted on-premises).", err)
	case ge.Status == 404 && (ge.HasCode("ErrorInvalidUser") || ge.HasCode("Request_ResourceNotFound") || ge.HasCode("ResourceNotFound")):
		return unreachable(reasonMailboxNotFound, "No mailbox "+mailbox+" exists in the account's organisation.", err)
	}
	return classifyGraph("open mailbox", err)
}

// grantedShared says whether the granted scopes reach other users'
// mailboxes.
func grantedShared(scopes []string) bool {
	for _, s := range scopes {
		switch s {
		case "Mail.Read.Shared", "Mail.ReadWrite.Shared":
			return true
		}
	}
	return false
}

// RegisterMailbox writes an attached mailbox's registry row (once; a retry
// finds it written). A mailbox another live connection syncs is refused.
func (a *Activities) RegisterMailbox(ctx context.Context, in workflows.RegisterMailboxInput) error {
	raw, err := json.Marshal(in.Settings)
	if err != nil {
		return fmt.Errorf("activities: settings of %s: %w", in.MailboxID, err)
	}
	err = a.Store.AttachMailbox(ctx, store.Mailbox{ID: in.MailboxID, ConnectionID: in.ConnectionID, Address: in.Address,
		UserID: in.UserID, DisplayName: in.DisplayName, State: workflows.StateActive, Settings: raw})
	if errors.Is(err, store.ErrMailboxTaken) {
		return temporal.NewNonRetryableApplicationError(in.Address+" is already synced by another connection", workflows.ErrMailboxTaken, err)
	}
	return err
}
