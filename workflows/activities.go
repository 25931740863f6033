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
