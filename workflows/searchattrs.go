package workflows

import "go.temporal.io/sdk/temporal"

// Search attributes operators filter on (registered by `outlookd setup`).
var (
	// SAConnectionID is the connection a mailbox workflow syncs for (and a
	// connection workflow's own ID), so that one filter finds them all.
	SAConnectionID    = temporal.NewSearchAttributeKeyKeyword("ConnectionId")
	SAConnectionState = temporal.NewSearchAttributeKeyKeyword("ConnectionState")
	SAConnectionMode  = temporal.NewSearchAttributeKeyKeyword("ConnectionMode")
	SATenantID        = temporal.NewSearchAttributeKeyKeyword("TenantId")
	SAMailbox         = temporal.NewSearchAttributeKeyKeyword("Mailbox")
	// SASyncMode is push or polling once live sync has started.
	SASyncMode = temporal.NewSearchAttributeKeyKeyword("SyncMode")
)

// SearchAttributes is every custom search attribute the workflows set: what
// `outlookd setup` and the dev stack register, and what a worker checks for
// before it starts.
var SearchAttributes = []temporal.SearchAttributeKey{
	SAConnectionID, SAConnectionState, SAConnectionMode, SATenantID, SAMailbox, SASyncMode,
}
