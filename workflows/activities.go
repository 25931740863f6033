package workflows

import "time"

// Activity names and the shapes they take and return. The activities
// package implements them; workflows refer to them by name so that this
// package never imports Graph, Vault or Postgres code.
const (
	ActivityExchangeCode    = "ExchangeCode"
	ActivityRefreshTokens   = "RefreshTokens"
	ActivityDiscoverFolders = "DiscoverFolders"
	ActivityBackfillFolder  = "BackfillFolder"
	ActivityRecordState     = "RecordState"
)

// Error types of the activities' application errors, matched by workflows.
const (
	// ErrReauthRequired: the refresh token is dead (revoked, password
	// changed, MFA now required...); details carry the reason.
	ErrReauthRequired = "ReauthRequired"
	// ErrConsentFailed: the authorization code could not be exchanged;
	// details carry the reason.
	ErrConsentFailed = "ConsentFailed"
	// ErrMailboxTaken: another live connection holds the mailbox.
	ErrMailboxTaken = "MailboxTaken"
	// ErrThrottled: Graph asked to wait (429/503/504); retried after
	// Retry-After.
	ErrThrottled = "Throttled"
	// ErrGraphRejected: Graph refused the request for good (4xx).
	ErrGraphRejected = "GraphRejected"
	// ErrFolderGone: a synced folder no longer exists.
	ErrFolderGone = "FolderGone"
)

// ExchangeCodeInput names the code waiting in Vault.
type ExchangeCodeInput struct {
	ConnectionID string `json:"connectionId"`
	Ref          string `json:"ref"`
	// ExpectUserID, when set, refuses a different account (re-consent).
	ExpectUserID string `json:"expectUserId,omitempty"`
}

// ExchangeCodeResult describes the account that consented.
type ExchangeCodeResult struct {
	UserID        string    `json:"userId"`
	Mailbox       string    `json:"mailbox"`
	TenantID      string    `json:"tenantId"`
	DisplayName   string    `json:"displayName"`
	GrantedScopes []string  `json:"grantedScopes"`
	AccessExpiry  time.Time `json:"accessExpiry"`
}

// RefreshInput asks for a token refresh.
type RefreshInput struct {
	ConnectionID string `json:"connectionId"`
}

// RefreshResult reports the new access token's expiry.
type RefreshResult struct {
	AccessExpiry  time.Time `json:"accessExpiry"`
	GrantedScopes []string  `json:"grantedScopes"`
}

// FolderRef is a folder found in the mailbox.
type FolderRef struct {
	ID        string `json:"id"`
	ParentID  string `json:"parentId,omitempty"`
	Name      string `json:"name"`
	WellKnown string `json:"wellKnown,omitempty"`
}

// DiscoverFoldersInput names the root folders to sync.
type DiscoverFoldersInput struct {
	ConnectionID string    `json:"connectionId"`
	UserID       string    `json:"userId"`
	Roots        []string  `json:"roots"`
	WindowStart  time.Time `json:"windowStart"`
}

// DiscoverFoldersResult lists the roots and all their descendants.
type DiscoverFoldersResult struct {
	Folders []FolderRef `json:"folders"`
}

// BackfillFolderInput pages one folder for up to Budget.
type BackfillFolderInput struct {
	ConnectionID string    `json:"connectionId"`
	UserID       string    `json:"userId"`
	FolderID     string    `json:"folderId"`
	WindowStart  time.Time `json:"windowStart"`
	// PreviousStart is the start of the window already backfilled; when
	// set, only the gap between WindowStart and it is fetched.
	PreviousStart time.Time     `json:"previousStart,omitempty"`
	StoreBodies   bool          `json:"storeBodies"`
	PageSize      int           `json:"pageSize"`
	Budget        time.Duration `json:"budget"`
}

// BackfillFolderResult says how far the folder got.
type BackfillFolderResult struct {
	Fetched int64 `json:"fetched"`
	Pages   int   `json:"pages"`
	Done    bool  `json:"done"`
}

// RecordStateInput mirrors a state change into the registry.
type RecordStateInput struct {
	ConnectionID string `json:"connectionId"`
	State        string `json:"state"`
	Mode         string `json:"mode,omitempty"`
}

// BackfillInput starts a backfill child.
type BackfillInput struct {
	ConnectionID  string    `json:"connectionId"`
	ParentID      string    `json:"parentId"`
	UserID        string    `json:"userId"`
	Roots         []string  `json:"roots"`
	WindowStart   time.Time `json:"windowStart"`
	PreviousStart time.Time `json:"previousStart,omitempty"`
	StoreBodies   bool      `json:"storeBodies"`
	PageSize      int       `json:"pageSize"`
	Concurrency   int       `json:"concurrency"`
	// HeartbeatTimeout of the page activities.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout"`
}

// BackfillResult sums a backfill up.
type BackfillResult struct {
	Folders []FolderProgress `json:"folders"`
	Fetched int64            `json:"fetched"`
}

// Live sync and the end of a connection.
const (
	ActivitySyncFolders         = "SyncFolders"
	ActivityEnsureSubscription  = "EnsureSubscription"
	ActivityRenewSubscription   = "RenewSubscription"
	ActivityDeleteSubscriptions = "DeleteSubscriptions"
	ActivityPurgeSecrets        = "PurgeSecrets"
	ActivityApplyRetention      = "ApplyRetention"
	ActivityRecordEvent         = "RecordEvent"
)

// SyncFoldersInput runs a delta round for every live folder.
type SyncFoldersInput struct {
	ConnectionID string    `json:"connectionId"`
	UserID       string    `json:"userId"`
	WindowStart  time.Time `json:"windowStart"`
	StoreBodies  bool      `json:"storeBodies"`
	PageSize     int       `json:"pageSize"`
	// Reanchor names folders (IDs or well-known names, "*" for all) to
	// re-anchor from scratch in this round.
	Reanchor []string `json:"reanchor,omitempty"`
}

// SyncFoldersResult counts what a round changed.
type SyncFoldersResult struct {
	Upserted   int64 `json:"upserted"`
	Removed    int64 `json:"removed"`
	Reanchored int   `json:"reanchored"`
}

// EnsureSubscriptionInput asks for one live subscription on the mailbox.
type EnsureSubscriptionInput struct {
	ConnectionID    string        `json:"connectionId"`
	UserID          string        `json:"userId"`
	NotificationURL string        `json:"notificationUrl"`
	LifecycleURL    string        `json:"lifecycleUrl"`
	Lifetime        time.Duration `json:"lifetime"`
	// Replace deletes the connection's known subscriptions first.
	Replace bool `json:"replace"`
}

// SubscriptionResult describes the live subscription, or why push is not
// possible (then the connection polls).
type SubscriptionResult struct {
	ID         string    `json:"id,omitempty"`
	Expiration time.Time `json:"expiration,omitempty"`
	// PollReason is set when Graph refused the subscription.
	PollReason string `json:"pollReason,omitempty"`
	// Gone: the subscription no longer exists at Graph.
	Gone bool `json:"gone,omitempty"`
}

// RenewSubscriptionInput renews (and so reauthorizes) a subscription.
type RenewSubscriptionInput struct {
	ConnectionID   string        `json:"connectionId"`
	SubscriptionID string        `json:"subscriptionId"`
	Lifetime       time.Duration `json:"lifetime"`
}

// ConnectionRef names a connection.
type ConnectionRef struct {
	ConnectionID string `json:"connectionId"`
}

// RetentionInput applies the retention policy at disconnect.
type RetentionInput struct {
	ConnectionID string `json:"connectionId"`
	Policy       string `json:"policy"`
}

// RecordEventInput records an event for the app, once per ID.
type RecordEventInput struct {
	ConnectionID string         `json:"connectionId"`
	EventID      string         `json:"eventId"`
	Type         string         `json:"type"`
	Data         map[string]any `json:"data,omitempty"`
}
