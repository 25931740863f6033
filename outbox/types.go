package outbox

import (
	"fmt"
	"slices"
	"strings"
)

// Types are the event types outlookd records, the catalogue an endpoint's
// filter is checked against (docs/events.md describes each).
var Types = []string{
	"connection.created", "connection.active", "connection.reauth_required", "connection.admin_consent_required",
	"connection.credential_expiring", "connection.visibility_changed", "connection.disconnected",
	"mailbox.attached", "mailbox.access_lost", "mailbox.detached", "mailbox.mail_expired",
	"backfill.completed", "contacts.fetched", "folder.removed",
	"message.created", "message.updated", "message.deleted",
	"send.sent", "send.failed",
}

// families are the parts of the types before their dot.
func families() []string {
	var out []string
	for _, t := range Types {
		f, _, _ := strings.Cut(t, ".")
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// MaxPatterns bounds an endpoint's filter.
const MaxPatterns = 50

// CheckPatterns validates an endpoint's filter: at least one pattern, each
// an event type of the catalogue, a family of them ("send.*"), or every
// type ("*"), none twice. A pattern that could match nothing is refused
// rather than kept: a misspelt filter would otherwise stay silent.
func CheckPatterns(patterns []string) error {
	if len(patterns) == 0 {
		return fmt.Errorf(`events must name at least one event type, family ("send.*") or "*"`)
	}
	if len(patterns) > MaxPatterns {
		return fmt.Errorf("events has %d patterns; at most %d", len(patterns), MaxPatterns)
	}
	fams := families()
	for i, p := range patterns {
		family, ok := strings.CutSuffix(p, ".*")
		switch {
		case p == "*":
		case ok && slices.Contains(fams, family):
		case !ok && slices.Contains(Types, p):
		default:
			return fmt.Errorf(`events[%d] %q is not an event type, a family of them (one of %s, followed by ".*") or "*"`, i, p, strings.Join(fams, ", "))
		}
		if slices.Contains(patterns[:i], p) {
			return fmt.Errorf("events[%d] %q is named twice", i, p)
		}
	}
	return nil
}
