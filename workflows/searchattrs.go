package workflows

import "go.temporal.io/sdk/temporal"

// Search attributes operators filter on (registered by the stack).
var (
	SAConnectionState = temporal.NewSearchAttributeKeyKeyword("ConnectionState")
	SAConnectionMode  = temporal.NewSearchAttributeKeyKeyword("ConnectionMode")
	SATenantID        = temporal.NewSearchAttributeKeyKeyword("TenantId")
	SAMailbox         = temporal.NewSearchAttributeKeyKeyword("Mailbox")
	// SASyncMode is push or polling once live sync has started.
	SASyncMode = temporal.NewSearchAttributeKeyKeyword("SyncMode")
)
