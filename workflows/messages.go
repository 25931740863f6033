// Package workflows holds outlookd's durable workflows: one Connection
// workflow per connected mailbox, for its whole life, and the Backfill
// child it runs. Workflows do no I/O; activities do. Nothing secret ever
// enters their inputs, results, signals, updates, queries or search
// attributes: tokens and codes stay in Vault, referenced by connection ID.
package workflows

import (
	"fmt"
	"time"
)

// TaskQueue is the task queue of every outlookd workflow and activity.
const TaskQueue = "outlookd"

// ConnectionWorkflowID is the workflow ID of a connection; the only place
// it is built.
func ConnectionWorkflowID(connectionID string) string { return "connection/" + connectionID }

// BackfillWorkflowID is the ID of a connection's n-th backfill.
func BackfillWorkflowID(connectionID string, n int) string {
	return fmt.Sprintf("connection/%s/backfill/%d", connectionID, n)
}

// Connection states, as the ConnectionState search attribute and the status
// query show them.
const (
	StatePendingConsent = "pending_consent"
	StateConnecting     = "connecting"
	StateActive         = "active"
	StateReauthRequired = "reauth_required"
	StateDisconnecting  = "disconnecting"
	StateDisconnected   = "disconnected"
)

// Connection modes.
const (
	ModeDelegated   = "delegated"
	ModeShared      = "shared"
	ModeApplication = "application"
)

// Handler names.
const (
	QueryStatus            = "status"
	UpdateConsent          = "consent"
	UpdateSettings         = "settings"
	UpdateDisconnect       = "disconnect"
	UpdateResync           = "resync"
	SignalBackfillProgress = "backfill_progress"
	// SignalChanges says Graph notified changes in the mailbox.
	SignalChanges = "changes"
	// SignalLifecycle carries a subscription lifecycle event.
	SignalLifecycle = "lifecycle"
)

// Sync modes.
const (
	SyncPush    = "push"
	SyncPolling = "polling"
)

// Lifecycle events Graph sends (facts §4.3).
const (
	LifecycleReauthorizationRequired = "reauthorizationRequired"
	LifecycleSubscriptionRemoved     = "subscriptionRemoved"
	LifecycleMissed                  = "missed"
)

// LifecycleSignal is a lifecycle notification for the connection.
type LifecycleSignal struct {
	Event          string `json:"event"`
	SubscriptionID string `json:"subscriptionId"`
}

// SyncState is where live sync stands.
type SyncState struct {
	Mode                string    `json:"mode,omitempty"` // push or polling
	PollReason          string    `json:"pollReason,omitempty"`
	SubscriptionID      string    `json:"subscriptionId,omitempty"`
	SubscriptionExpires time.Time `json:"subscriptionExpires,omitempty"`
	LastSync            time.Time `json:"lastSync,omitempty"`
	Rounds              int       `json:"rounds"`
	Upserted            int64     `json:"upserted"`
	Removed             int64     `json:"removed"`
	Reanchored          int       `json:"reanchored"`
	LastError           string    `json:"lastError,omitempty"`
}

// Retention policies applied at disconnect.
const (
	RetentionDelete = "delete"
	RetentionKeep   = "keep"
)

// Features a connection asks for.
type Features struct {
	Read bool `json:"read"`
	Send bool `json:"send"`
}

// Settings are what the app chose for a connection.
type Settings struct {
	// BackfillDays is how far back mail is synced (default 30).
	BackfillDays int `json:"backfillDays"`
	// Folders are well-known names or folder IDs (default inbox, sentitems,
	// archive), each with its child folders.
	Folders     []string `json:"folders"`
	StoreBodies bool     `json:"storeBodies"`
	Features    Features `json:"features"`
	Retention   string   `json:"retention"`
	// PollMinutes is the sync interval when Graph cannot push (zero: the
	// engine's default, 5 minutes).
	PollMinutes int `json:"pollMinutes,omitempty"`
}

// DefaultFolders are synced when the app names none.
var DefaultFolders = []string{"inbox", "sentitems", "archive"}

// WithDefaults fills the defaults in.
func (s Settings) WithDefaults() Settings {
	if s.BackfillDays == 0 {
		s.BackfillDays = 30
	}
	if len(s.Folders) == 0 {
		s.Folders = append([]string(nil), DefaultFolders...)
	}
	if !s.Features.Read && !s.Features.Send {
		s.Features.Read = true
	}
	if s.Retention == "" {
		s.Retention = RetentionDelete
	}
	return s
}

// Validate rejects settings the engine cannot honour.
func (s Settings) Validate() error {
	switch {
	case s.BackfillDays < 0 || s.BackfillDays > 3650:
		return fmt.Errorf("backfill window must be between 0 and 3650 days, not %d", s.BackfillDays)
	case s.Retention != "" && s.Retention != RetentionDelete && s.Retention != RetentionKeep:
		return fmt.Errorf("retention must be %q or %q, not %q", RetentionDelete, RetentionKeep, s.Retention)
	case s.PollMinutes < 0 || s.PollMinutes > 1440:
		return fmt.Errorf("the polling interval must be between 1 and 1440 minutes, not %d", s.PollMinutes)
	}
	for _, f := range s.Folders {
		if f == "" {
			return fmt.Errorf("a folder name is empty")
		}
	}
	return nil
}

// Options tune the workflow; the zero value means the defaults. Tests use
// small values to exercise continue-as-new and timers.
type Options struct {
	// ContinueAsNewAfter: history length after which the workflow starts
	// afresh (well before Temporal's own suggestion).
	ContinueAsNewAfter int `json:"continueAsNewAfter,omitempty"`
	// KeepAliveEvery: how often the refresh token is exercised when nothing
	// else uses it (Microsoft expires it after 90 days of inactivity).
	KeepAliveEvery time.Duration `json:"keepAliveEvery,omitempty"`
	// PageSize is the Graph page size of backfills.
	PageSize int `json:"pageSize,omitempty"`
	// NotificationURL and LifecycleURL are where Graph posts change and
	// lifecycle notifications; without them the connection polls.
	NotificationURL string `json:"notificationUrl,omitempty"`
	LifecycleURL    string `json:"lifecycleUrl,omitempty"`
	// SubscriptionLifetime is asked of Graph for each subscription
	// (default 4230 minutes, the documented maximum for mail).
	SubscriptionLifetime time.Duration `json:"subscriptionLifetime,omitempty"`
	// RenewBefore renews a subscription this long before it expires
	// (default 24 hours, at most half the lifetime).
	RenewBefore time.Duration `json:"renewBefore,omitempty"`
	// ReconcileEvery runs a delta round without notifications (6 hours).
	ReconcileEvery time.Duration `json:"reconcileEvery,omitempty"`
	// PollEvery is the sync interval of a connection that cannot be
	// pushed to (5 minutes).
	PollEvery time.Duration `json:"pollEvery,omitempty"`
	// FolderConcurrency is how many folders a backfill pages at once.
	FolderConcurrency int `json:"folderConcurrency,omitempty"`
	// HeartbeatTimeout: a backfill activity silent this long is retried
	// elsewhere (a worker died).
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
}

func (o Options) withDefaults() Options {
	if o.ContinueAsNewAfter == 0 {
		o.ContinueAsNewAfter = 2000
	}
	if o.KeepAliveEvery == 0 {
		o.KeepAliveEvery = 72 * time.Hour
	}
	if o.PageSize == 0 {
		o.PageSize = 200
	}
	if o.FolderConcurrency == 0 {
		o.FolderConcurrency = 3
	}
	if o.HeartbeatTimeout == 0 {
		o.HeartbeatTimeout = time.Minute
	}
	if o.SubscriptionLifetime == 0 {
		o.SubscriptionLifetime = 4230 * time.Minute
	}
	if o.RenewBefore == 0 {
		o.RenewBefore = 24 * time.Hour
	}
	o.RenewBefore = min(o.RenewBefore, o.SubscriptionLifetime/2)
	if o.ReconcileEvery == 0 {
		o.ReconcileEvery = 6 * time.Hour
	}
	if o.PollEvery == 0 {
		o.PollEvery = 5 * time.Minute
	}
	return o
}

// ConnectionInput starts (or continues) a connection workflow.
type ConnectionInput struct {
	ID       string   `json:"id"`
	OrgID    string   `json:"orgId"`
	OwnerID  string   `json:"ownerId"`
	Mode     string   `json:"mode"`
	Settings Settings `json:"settings"`
	Options  Options  `json:"options"`
	// State is carried across continue-as-new.
	State *ConnectionState `json:"state,omitempty"`
}

// ConnectionResult is what a finished connection reports.
type ConnectionResult struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// FolderProgress is the backfill progress of one folder.
type FolderProgress struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Fetched int64  `json:"fetched"`
	Done    bool   `json:"done"`
}

// BackfillState is where the connection's backfill stands.
type BackfillState struct {
	Runs    int  `json:"runs"`
	Running bool `json:"running"`
	// Covered is the start of the window already backfilled (zero: none).
	Covered time.Time `json:"covered,omitempty"`
	// Target is the start of the window being backfilled.
	Target    time.Time                 `json:"target,omitempty"`
	Folders   map[string]FolderProgress `json:"folders,omitempty"`
	Completed time.Time                 `json:"completed,omitempty"`
	LastError string                    `json:"lastError,omitempty"`
}

// ConnectionState is the whole state of a connection: Vault paths and
// times, never tokens.
type ConnectionState struct {
	ID            string        `json:"id"`
	OrgID         string        `json:"orgId"`
	OwnerID       string        `json:"ownerId"`
	Mode          string        `json:"mode"`
	Settings      Settings      `json:"settings"`
	State         string        `json:"state"`
	Since         time.Time     `json:"since"`
	Reason        string        `json:"reason,omitempty"`
	ReasonText    string        `json:"reasonText,omitempty"`
	Mailbox       string        `json:"mailbox,omitempty"`
	UserID        string        `json:"userId,omitempty"`
	TenantID      string        `json:"tenantId,omitempty"`
	DisplayName   string        `json:"displayName,omitempty"`
	GrantedScopes []string      `json:"grantedScopes,omitempty"`
	Granted       Features      `json:"granted"`
	AccessExpiry  time.Time     `json:"accessExpiry,omitempty"`
	LastRefresh   time.Time     `json:"lastRefresh,omitempty"`
	Backfill      BackfillState `json:"backfill"`
	Sync          SyncState     `json:"sync"`
	// Disconnect is the step the disconnect saga is at.
	DisconnectStep string `json:"disconnectStep,omitempty"`
	// ConsentRef names the Vault entry holding an authorization code
	// waiting to be exchanged (the code itself never enters history).
	ConsentRef string `json:"consentRef,omitempty"`
	// Runs counts continue-as-new generations.
	Runs int `json:"runs"`
	// Pending is work asked for (by signals or lifecycle events) and not
	// yet started; it is carried across continue-as-new so no signal is
	// lost.
	Pending PendingWork `json:"pending"`
}

// PendingWork is work signalled and not yet started.
type PendingWork struct {
	Sync        bool `json:"sync,omitempty"`
	Renew       bool `json:"renew,omitempty"`
	Resubscribe bool `json:"resubscribe,omitempty"`
	// Reanchor lists folders (IDs, or "*" for all) whose delta anchors the
	// next round drops and rebuilds from a full scan of the window.
	Reanchor []string `json:"reanchor,omitempty"`
}

// ResyncInput asks for a delta round; with Folders (IDs or well-known
// names, or "*"), those folders are fully re-anchored.
type ResyncInput struct {
	Folders []string `json:"folders,omitempty"`
}

// Status is the answer of the status query: what an operator asks.
type Status struct {
	ConnectionState
	NextAction   string    `json:"nextAction"`
	NextActionAt time.Time `json:"nextActionAt,omitempty"`
	HistoryLen   int       `json:"historyLength"`
}

// ConsentInput completes (or fails) consent: a reference to the code in
// Vault, or the reason the identity platform refused (classified by the
// caller, e.g. admin_consent_required) with a sentence for people.
type ConsentInput struct {
	Ref        string `json:"ref,omitempty"`
	Reason     string `json:"reason,omitempty"`
	ReasonText string `json:"reasonText,omitempty"`
}

// BackfillProgress is what the backfill child signals its parent.
type BackfillProgress struct {
	Folder FolderProgress `json:"folder"`
}
