package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"
)

// What the Temporal UI and CLI show of a workflow besides its search
// attributes (Temporal's user metadata): a fixed summary and details given
// at the start (StartWorkflowOptions.StaticSummary and StaticDetails), and
// the current details a running workflow keeps up to date
// (workflow.SetCurrentDetails, answered to the __temporal_workflow_metadata
// query; it adds nothing to the history). None holds a secret or a token:
// IDs, the mailbox's address, the kind and the state only.

// ConnectionSummary is a connection workflow's one-line summary.
func ConnectionSummary(id, mode, mailbox, state string) string {
	parts := []string{"outlookd connection " + id, orDash(mode)}
	if mailbox != "" {
		parts = append(parts, mailbox)
	}
	return strings.Join(append(parts, "started "+state), " · ")
}

// ConnectionDetails are a connection workflow's fixed details: who it is
// for and how an operator follows it.
func ConnectionDetails(id, orgID, ownerID, mode, mailbox, state string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Connection** %s (%s)  \n", id, orDash(mode))
	fmt.Fprintf(&b, "**Organisation** %s · **owner** %s  \n", orgID, orDash(ownerID))
	if mailbox != "" {
		fmt.Fprintf(&b, "**Mailbox** %s  \n", mailbox)
	}
	fmt.Fprintf(&b, "**Started** %s  \n", state)
	fmt.Fprintf(&b, "Current state: the workflow's current details, its `%s` query, or `outlookd connections show %s`. "+
		"Mailbox workflows of this connection: `ConnectionId = %q`.", QueryStatus, id, id)
	return b.String()
}

// MailboxSummary is an attached mailbox workflow's one-line summary.
func MailboxSummary(id, connectionID, address string) string {
	return fmt.Sprintf("outlookd mailbox %s · %s · of %s", id, orDash(address), connectionID)
}

// SendSummary is a send workflow's one-line summary.
func SendSummary(in SendInput) string {
	from := "its own mailbox"
	if in.MailboxID != "" {
		from = "mailbox " + in.MailboxID
	}
	return fmt.Sprintf("outlookd send %s · connection %s · %s · %d recipients", in.SendID, in.ConnectionID, from, in.Recipients)
}

// currentDetails is what the running workflow shows of itself now.
func (c *connection) currentDetails() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**State** %s since %s", c.s.State, c.s.Since.UTC().Format(time.RFC3339))
	if c.s.Reason != "" {
		fmt.Fprintf(&b, " · **reason** %s", c.s.Reason)
	}
	b.WriteString("  \n")
	if c.s.ReasonText != "" {
		fmt.Fprintf(&b, "%s  \n", c.s.ReasonText)
	}
	kind := c.s.Mode
	if c.isMailbox() {
		kind = "mailbox of " + c.s.ConnectionID
	}
	fmt.Fprintf(&b, "**Kind** %s · **mailbox** %s", orDash(kind), orDash(c.s.Mailbox))
	if c.s.Sync.Mode != "" {
		fmt.Fprintf(&b, " · **sync** %s", c.s.Sync.Mode)
	}
	if len(c.s.Mailboxes) > 0 {
		fmt.Fprintf(&b, " · **attached mailboxes** %d", len(c.s.Mailboxes))
	}
	return b.String()
}

// showDetails sets the workflow's current details from its state.
func (c *connection) showDetails(ctx workflow.Context) {
	workflow.SetCurrentDetails(ctx, c.currentDetails())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
