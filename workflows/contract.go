// Package workflows holds outlookd's durable workflows: one Connection
// workflow per connected mailbox, for its whole life, and the Backfill
// child it runs. Workflows do no I/O; activities do. Nothing secret ever
// enters their inputs, results, signals, updates, queries or search
// attributes: tokens and codes stay in Vault, referenced by connection ID.
//
// This file is the contract with everyone outside the package: workflow
// IDs, handler names, states, and the shapes the API, the webhook receiver
// and the activities exchange with the workflows. The states and their
// transitions are in lifecycle.go, the calls to activities in calls.go.
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

// Connection kinds (the registry's mode).
const (
	// ModeDelegated: a user signs in; the connection syncs the user's own
	// mailbox.
	ModeDelegated = "delegated"
	// ModeServiceAccount: a service account signs in with the .Shared
	// scopes; the connection syncs the shared mailboxes attached to it.
	ModeServiceAccount = "service_account"
	// ModeApplication: the app's own credential (client credentials,
	// application permissions); the connection discovers and syncs the
	// tenant's mailboxes (application.go).
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
	// SignalContacts says contacts were added to the mailbox: their past
	// mail is fetched (with the contact filter on).
	SignalContacts = "contacts"
	// SignalConsent hands a consent over (ConsentInput) as the consent
	// update does, sent when the user's time ran out before the workflow
	// accepted the update (an update is lost with a workflow task that
	// times out, and refused until its retry succeeds). The workflow takes
	// a consent reference once, from whichever comes first; a consent it
	// is not waiting for is ignored.
	SignalConsent = "consent"
)

// Sync modes.
const (
	SyncPush    = "push"
	SyncPolling = "polling"
)

// Lifecycle events Graph sends (docs/graph.md#lifecycle-notifications).
const (
	LifecycleReauthorizationRequired = "reauthorizationRequired"
	LifecycleSubscriptionRemoved     = "subscriptionRemoved"
	LifecycleMissed                  = "missed"
)

// ChangesSignal says Graph notified changes in the mailbox. RefusedSince,
// when set, says instead that the receiver refused notifications (503)
// from that time, so some of this mailbox's may never have arrived: the
// round it asks for is a catch-up, and until one has run the mailbox is
// behind (SyncState.Behind).
type ChangesSignal struct {
	RefusedSince time.Time `json:"refusedSince,omitzero"`
}

// LifecycleSignal is a lifecycle notification for the connection.
type LifecycleSignal struct {
	Event          string `json:"event"`
	SubscriptionID string `json:"subscriptionId"`
}

// Retention policies applied at disconnect.
const (
	RetentionDelete = "delete"
	RetentionKeep   = "keep"
)

// Body storage policies.
const (
	// BodiesStore syncs message bodies into Postgres.
	BodiesStore = "store"
	// BodiesOnDemand fetches a body from Graph when a message is read.
	BodiesOnDemand = "on_demand"
	// BodiesNone neither stores nor fetches bodies: nothing of a body
	// (its preview neither) is stored, and attachments are not streamed.
	BodiesNone = "none"
	// BodiesMetadata stores headers only: BodiesNone without the
	// attachments' names, types and sizes.
	BodiesMetadata = "metadata"
)

// bodyLevels orders the policies by how much of a message they keep.
var bodyLevels = map[string]int{BodiesMetadata: 0, BodiesNone: 1, BodiesOnDemand: 2, BodiesStore: 3}

// KeepsLess says whether moving from policy was to is keeps less of each
// message (what is stored beyond is then deleted).
func KeepsLess(was, is string) bool { return bodyLevels[is] < bodyLevels[was] }

// Features a connection asks for, or its granted scopes allow.
type Features struct {
	Read bool `json:"read"`
	Send bool `json:"send"`
}

// Settings are what the app chose for a connection: the one settings type.
// The API converts its views to and from it; the workflow owns it and is
// the only writer of the registry's copy.
type Settings struct {
	// BackfillDays is how far back mail is synced (default 30).
	BackfillDays int `json:"backfillDays"`
	// Folders are well-known names or folder IDs (default inbox, sentitems,
	// archive), each with its child folders.
	Folders []string `json:"folders"`
	// Bodies is the body storage policy (default on_demand).
	Bodies    string   `json:"bodies"`
	Features  Features `json:"features"`
	Retention string   `json:"retention"`
	// PollMinutes is the sync interval when Graph cannot push (zero: the
	// engine's default, 5 minutes).
	PollMinutes int `json:"pollMinutes,omitempty"`
	// ContactFilter stores only mail from or to the mailbox's contacts
	// (docs/contacts.md); off by default.
	ContactFilter bool `json:"contactFilter,omitempty"`
	// KeepDays: mail kept at a disconnect (RetentionKeep) is deleted this
	// many days after it (zero: kept until deleted otherwise).
	KeepDays int `json:"keepDays,omitempty"`
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
	if s.Bodies == "" {
		s.Bodies = BodiesOnDemand
	}
	if !s.Features.Read && !s.Features.Send {
		s.Features.Read = true
	}
	if s.Retention == "" {
		s.Retention = RetentionDelete
	}
	return s
}

// StoreBodies says whether bodies are synced into the store.
func (s Settings) StoreBodies() bool { return s.Bodies == BodiesStore }

// Validate rejects settings the engine cannot honour, with a sentence the
// API shows as it is.
func (s Settings) Validate() error {
	switch {
	case s.BackfillDays < 0 || s.BackfillDays > 3650:
		return fmt.Errorf("backfill window must be between 0 and 3650 days, not %d", s.BackfillDays)
	case s.Retention != "" && s.Retention != RetentionDelete && s.Retention != RetentionKeep:
		return fmt.Errorf("retention must be %q or %q, not %q", RetentionDelete, RetentionKeep, s.Retention)
	case s.Bodies != "" && s.Bodies != BodiesStore && s.Bodies != BodiesOnDemand && s.Bodies != BodiesNone && s.Bodies != BodiesMetadata:
		return fmt.Errorf("storage.bodies must be %q, %q, %q or %q", BodiesStore, BodiesOnDemand, BodiesNone, BodiesMetadata)
	case s.KeepDays < 0 || s.KeepDays > 3650:
		return fmt.Errorf("the retention period must be between 0 and 3650 days, not %d", s.KeepDays)
	case s.PollMinutes < 0 || s.PollMinutes > 1440:
		return fmt.Errorf("the polling interval must be between 1 and 1440 minutes, not %d", s.PollMinutes)
	case len(s.Folders) > 0:
		// No folders means the default ones; a list given is checked.
		return ValidateFolders(s.Folders)
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
	// (default 4230 minutes).
	SubscriptionLifetime time.Duration `json:"subscriptionLifetime,omitempty"`
	// RenewBefore renews a subscription this long before it expires
	// (default 24 hours, at most half the lifetime asked, and at most half
	// the lifetime Graph granted: see renewalTime).
	RenewBefore time.Duration `json:"renewBefore,omitempty"`
	// ReconcileEvery runs a delta round without notifications (6 hours).
	ReconcileEvery time.Duration `json:"reconcileEvery,omitempty"`
	// PollEvery is the sync interval of a connection that cannot be
	// pushed to (5 minutes).
	PollEvery time.Duration `json:"pollEvery,omitempty"`
	// FolderConcurrency is how many folders a backfill pages at once.
	FolderConcurrency int `json:"folderConcurrency,omitempty"`
	// HeartbeatTimeout: a backfill activity silent this long is retried
	// elsewhere (a worker died); 15 seconds. The activity heartbeats on its
	// own every third of it, however long a page takes, so a lost worker
	// costs about this long.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout,omitempty"`
	// DiscoverEvery is how often an application connection follows
	// /users/delta for joins and leaves (15 minutes).
	DiscoverEvery time.Duration `json:"discoverEvery,omitempty"`
	// ExpiryMargins are how long before its client secret expires an
	// application connection tells the app (30 and 7 days).
	ExpiryMargins []time.Duration `json:"expiryMargins,omitempty"`
	// MailboxSettingsEvery is how often an application connection's
	// mailbox reads its mailboxSettings again, at its next sync round
	// (6 hours).
	MailboxSettingsEvery time.Duration `json:"mailboxSettingsEvery,omitempty"`
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
		o.HeartbeatTimeout = 15 * time.Second
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
	// State is carried across continue-as-new; a workflow started anew for
	// a connection whose workflow is gone starts from the registry's
	// account of it in the disconnecting state (Orphan).
	State *ConnectionState `json:"state,omitempty"`
	// Application starts an application connection, active (its
	// credential was checked by the API).
	Application *ApplicationInit `json:"application,omitempty"`
}

// ConnectionResult is what a finished connection reports.
type ConnectionResult struct {
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
}

// Orphan is the state from which a connection whose workflow ended
// without disconnecting (terminated, or failed) is cleaned up: a new run
// under the same workflow ID starts in the disconnecting state and runs the
// disconnect saga from what the registry and Vault know.
func Orphan(id, orgID, ownerID, mode, mailbox string, settings Settings) ConnectionState {
	return ConnectionState{ID: id, OrgID: orgID, OwnerID: ownerID, Mode: mode, Settings: settings.WithDefaults(), Mailbox: mailbox,
		State: StateDisconnecting, Reason: ReasonWorkflowEnded,
		ReasonText: "The connection's workflow ended without disconnecting; it is being cleaned up."}
}

// Reasons the workflow itself gives (the identity platform's are in the
// identity package).
const (
	ReasonDisconnectRequested = "disconnect_requested"
	ReasonWorkflowCanceled    = "workflow_canceled"
	ReasonWorkflowEnded       = "workflow_ended"
	ReasonDisconnected        = "disconnected"
	ReasonMailboxTaken        = "mailbox_already_connected"
	ReasonConsentFailed       = "consent_failed"
)

// FolderProgress is the backfill progress of one folder.
type FolderProgress struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Fetched int64  `json:"fetched"`
	Done    bool   `json:"done"`
	// Total is the folder's item count at Graph when the backfill began
	// (totalItemCount: every item, also those before the window).
	Total int64 `json:"total,omitempty"`
}

// Backoff is how often in a row a duty failed and when it may run again.
type Backoff struct {
	Failures int       `json:"failures,omitempty"`
	RetryAt  time.Time `json:"retryAt,omitempty"`
}

// BackfillState is where the connection's backfill stands.
type BackfillState struct {
	Runs    int  `json:"runs"`
	Running bool `json:"running"`
	// Covered is the start of the window already backfilled (zero: none).
	Covered time.Time `json:"covered,omitempty"`
	// Roots are the root folders the covered window was backfilled for.
	Roots []string `json:"roots,omitempty"`
	// Target is the start of the window being backfilled.
	Target time.Time `json:"target,omitempty"`
	// Started is when the backfill under way (or the last) began.
	Started time.Time `json:"started,omitempty"`
	// Missing are roots the settings name that the mailbox does not have.
	Missing   []string                  `json:"missing,omitempty"`
	Folders   map[string]FolderProgress `json:"folders,omitempty"`
	Completed time.Time                 `json:"completed,omitempty"`
	LastError string                    `json:"lastError,omitempty"`
	Backoff   Backoff                   `json:"backoff"`
}

// SyncState is where live sync stands.
type SyncState struct {
	Mode                string    `json:"mode,omitempty"` // push or polling
	PollReason          string    `json:"pollReason,omitempty"`
	SubscriptionID      string    `json:"subscriptionId,omitempty"`
	SubscriptionExpires time.Time `json:"subscriptionExpires,omitempty"`
	LastSync            time.Time `json:"lastSync,omitempty"`
	// Behind says notifications for the mailbox may have been refused
	// since its last round (LastSync): a catch-up round asked at
	// BehindAsked is due, and the mailbox may miss changes until it ran.
	Behind      bool      `json:"behind,omitempty"`
	BehindAsked time.Time `json:"behindAsked,omitzero"`
	Rounds      int       `json:"rounds"`
	Upserted    int64     `json:"upserted"`
	Removed     int64     `json:"removed"`
	Reanchored  int       `json:"reanchored"`
	// GoneFolders counts folders deleted at Microsoft and dropped.
	GoneFolders int       `json:"goneFolders,omitempty"`
	LastError   string    `json:"lastError,omitempty"`
	Backoff     Backoff   `json:"backoff"`
	Subscribe   Backoff   `json:"subscribeBackoff"`
	LastRenewal time.Time `json:"lastRenewal,omitempty"`
	// SubscriptionRenewAt is when the subscription is next renewed, from
	// the lifetime Graph granted (zero: RenewBefore ahead of expiry).
	SubscriptionRenewAt time.Time `json:"subscriptionRenewAt,omitempty"`
}

// ConnectionState is the whole state of a connection, or of an attached
// mailbox's workflow: Vault paths and times, never tokens.
type ConnectionState struct {
	ID string `json:"id"`
	// ConnectionID is, in a mailbox's workflow, the connection it belongs
	// to (whose tokens its calls use); empty in a connection's.
	ConnectionID  string        `json:"connectionId,omitempty"`
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
	// DisconnectStep is the step the disconnect saga is at.
	DisconnectStep string `json:"disconnectStep,omitempty"`
	// ConsentRef names the Vault entry holding an authorization code
	// waiting to be exchanged (the code itself never enters history).
	ConsentRef string `json:"consentRef,omitempty"`
	// TakenConsentRef is the last consent reference handed over: the
	// same consent arriving again (as the update and as SignalConsent) is
	// not taken twice.
	TakenConsentRef string `json:"takenConsentRef,omitempty"`
	// Reconsent: the code being exchanged is a re-consent of the same
	// account after reauth_required.
	Reconsent bool `json:"reconsent,omitempty"`
	// Transitions counts state changes; event IDs are built from it.
	Transitions int `json:"transitions"`
	// Registry is what the registry row holds: the state and settings last
	// written, and the events not yet written with them.
	Registry RegistryMirror `json:"registry"`
	// Runs counts continue-as-new generations.
	Runs int `json:"runs"`
	// Pending is work asked for (by signals or lifecycle events) and not
	// yet started; it is carried across continue-as-new so no signal is
	// lost.
	Pending PendingWork `json:"pending"`
	// Mailboxes are the mailboxes attached to a service account's
	// connection, by ID, until their workflows have ended.
	Mailboxes map[string]MailboxRef `json:"mailboxes,omitempty"`
	// AccessLostTold: a mailbox's app was told it lost access, and its
	// access has not been seen back since (it is told once).
	AccessLostTold bool `json:"accessLostTold,omitempty"`
	// App is an application connection's own state.
	App *AppState `json:"app,omitempty"`
	// Contacts is where the fetch of added contacts' past mail stands.
	Contacts ContactsState `json:"contacts"`
}

// ContactsState is where the fetch of added contacts' past mail stands
// (docs/contacts.md).
type ContactsState struct {
	// Runs counts the fetches completed (each announced by a
	// contacts.fetched event).
	Runs int `json:"runs,omitempty"`
	// Fetching: a fetch is under way; Remaining contacts wait for it.
	Fetching  bool  `json:"fetching,omitempty"`
	Remaining int64 `json:"remaining,omitempty"`
	// Contacts and Messages count what the fetch under way (or the last
	// one) covered and stored.
	Contacts      int64     `json:"contacts,omitempty"`
	Messages      int64     `json:"messages,omitempty"`
	StartedAt     time.Time `json:"startedAt,omitempty"`
	LastCompleted time.Time `json:"lastCompleted,omitempty"`
	LastError     string    `json:"lastError,omitempty"`
	Backoff       Backoff   `json:"backoff"`
}

// RegistryMirror is the workflow's account of its registry row.
type RegistryMirror struct {
	State string `json:"state,omitempty"`
	// SyncMode is a mailbox workflow's way of syncing, as last written.
	SyncMode string        `json:"syncMode,omitempty"`
	Settings *Settings     `json:"settings,omitempty"`
	Events   []EventRecord `json:"events,omitempty"`
}

// PendingWork is work signalled and not yet started.
type PendingWork struct {
	Sync        bool `json:"sync,omitempty"`
	Renew       bool `json:"renew,omitempty"`
	Resubscribe bool `json:"resubscribe,omitempty"`
	// Reanchor lists folders (IDs or well-known names, or "*" for all)
	// whose delta anchors the next round drops and rebuilds from a full
	// scan of the window.
	Reanchor []string `json:"reanchor,omitempty"`
	// Contacts: contacts were added whose past mail may not be fetched.
	Contacts bool `json:"contacts,omitempty"`
	// FilterOn: the contact filter was switched on; the mail it excludes
	// is still to be deleted.
	FilterOn bool `json:"filterOn,omitempty"`
	// Strip: the body policy now keeps less; what the stored messages
	// hold beyond it is still to be deleted.
	Strip bool `json:"strip,omitempty"`
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
	// Progress sums up the backfill under way (nil when none runs).
	Progress *BackfillEstimate `json:"progress,omitempty"`
}

// BackfillEstimate is how far a running backfill got, as a share of the
// folders' totals, and when it should end at the pace so far.
type BackfillEstimate struct {
	Fetched int64 `json:"fetched"`
	// Total counts, for a folder done, what it fetched; for one under
	// way, Graph's total (an upper bound: it counts mail before the window
	// too).
	Total   int64   `json:"total"`
	Percent float64 `json:"percent"`
	// EstimatedEnd is zero until something was fetched.
	EstimatedEnd time.Time `json:"estimatedEnd,omitempty"`
}

// ConsentInput completes (or fails) consent: a reference to the code in
// Vault, or the reason the identity platform refused (classified by the
// caller, e.g. admin_consent_required) with a sentence for people.
type ConsentInput struct {
	Ref        string `json:"ref,omitempty"`
	Reason     string `json:"reason,omitempty"`
	ReasonText string `json:"reasonText,omitempty"`
}

// BackfillProgress is what the backfill child signals its parent: one
// folder's progress, or (Folders) every folder's at the start, or
// (Updates) the folders' progress since the last signal, in order.
type BackfillProgress struct {
	Run     int              `json:"run,omitempty"`
	Folder  FolderProgress   `json:"folder"`
	Folders []FolderProgress `json:"folders,omitempty"`
	Updates []FolderProgress `json:"updates,omitempty"`
}

// BackfillInput starts a backfill child.
type BackfillInput struct {
	ConnectionID string `json:"connectionId"`
	// MailboxID is the attached mailbox backfilled (empty: the delegated
	// connection's own, under its ID). So in every input below.
	MailboxID string   `json:"mailboxId,omitempty"`
	ParentID  string   `json:"parentId"`
	Run       int      `json:"run"`
	UserID    string   `json:"userId"`
	Roots     []string `json:"roots"`
	// WindowStart is the start of the window every folder must cover:
	// new folders are fetched from it, folders already live that start
	// later have the gap fetched.
	WindowStart time.Time `json:"windowStart"`
	StoreBodies bool      `json:"storeBodies"`
	// ContactFilter keeps only mail from or to the mailbox's contacts.
	ContactFilter bool `json:"contactFilter,omitempty"`
	// Bodies is the body storage policy (empty in inputs from before it:
	// StoreBodies alone decides, and previews are kept).
	Bodies      string `json:"bodies,omitempty"`
	PageSize    int    `json:"pageSize"`
	Concurrency int    `json:"concurrency"`
	// HeartbeatTimeout of the page activities.
	HeartbeatTimeout time.Duration `json:"heartbeatTimeout"`
	// Fetched is what each folder had fetched before (a mailbox's
	// BackfillMailbox activity), counted in its progress.
	Fetched map[string]int64 `json:"fetched,omitempty"`
}

// BackfillResult sums a backfill up.
type BackfillResult struct {
	Folders []FolderProgress `json:"folders"`
	Fetched int64            `json:"fetched"`
	// Missing are roots the mailbox does not have; Gone are folders that
	// were deleted at Microsoft while the backfill ran.
	Missing []string `json:"missing,omitempty"`
	Gone    []string `json:"gone,omitempty"`
}

// BackfillMailboxInput is a whole mailbox's backfill in one activity: its
// folders discovered, then paged side by side (Concurrency at once) until
// every one is done or Budget has run out. ParentID and Run are not used.
type BackfillMailboxInput struct {
	BackfillInput
	Budget time.Duration `json:"budget"`
}

// BackfillMailboxResult is how far a BackfillMailbox got: every folder's
// progress, those missing and gone, and whether every folder is done (if
// not, the backfill goes on folder by folder from the cursors committed).
type BackfillMailboxResult struct {
	BackfillResult
	Done bool `json:"done"`
}

// Error types of the activities' application errors, matched by workflows.
// Whether an error is retried is decided once, where the activity creates
// it (activities/errors.go): the workflows' retry policies list no types.
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
	// ErrDetached: the connection's mail was deleted or archived by the
	// disconnect saga; nothing more is written for it.
	ErrDetached = "Detached"
	// ErrSettingsNotRecorded is the settings update's own error: the
	// registry did not take the settings, and the workflow kept the ones it
	// had.
	ErrSettingsNotRecorded = "SettingsNotRecorded"
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
	Granted       Features  `json:"granted"`
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
	Granted       Features  `json:"granted"`
}

// FolderRef is a folder found in the mailbox.
type FolderRef struct {
	ID        string `json:"id"`
	ParentID  string `json:"parentId,omitempty"`
	Name      string `json:"name"`
	WellKnown string `json:"wellKnown,omitempty"`
	// Total is Graph's totalItemCount of the folder when it was listed.
	Total int64 `json:"total,omitempty"`
}

// DiscoverFoldersInput names the root folders to sync.
type DiscoverFoldersInput struct {
	ConnectionID string    `json:"connectionId"`
	MailboxID    string    `json:"mailboxId,omitempty"`
	UserID       string    `json:"userId"`
	Roots        []string  `json:"roots"`
	WindowStart  time.Time `json:"windowStart"`
}

// DiscoverFoldersResult lists the roots and all their descendants; the
// folders known before and no longer under a root were dropped with their
// mail.
type DiscoverFoldersResult struct {
	Folders []FolderRef `json:"folders"`
	// Missing are roots the mailbox does not have.
	Missing []string `json:"missing,omitempty"`
	// Dropped counts folders no longer synced.
	Dropped int `json:"dropped,omitempty"`
}

// BackfillFolderInput pages one folder for up to Budget: its first round
// from WindowStart, or the gap before the window it already covers.
type BackfillFolderInput struct {
	ConnectionID string    `json:"connectionId"`
	MailboxID    string    `json:"mailboxId,omitempty"`
	UserID       string    `json:"userId"`
	FolderID     string    `json:"folderId"`
	WindowStart  time.Time `json:"windowStart"`
	StoreBodies  bool      `json:"storeBodies"`
	// ContactFilter keeps only mail from or to the mailbox's contacts.
	ContactFilter bool `json:"contactFilter,omitempty"`
	// Bodies is the body storage policy (see BackfillInput).
	Bodies   string        `json:"bodies,omitempty"`
	PageSize int           `json:"pageSize"`
	Budget   time.Duration `json:"budget"`
}

// BackfillFolderResult says how far the folder got.
type BackfillFolderResult struct {
	Fetched int64 `json:"fetched"`
	Pages   int   `json:"pages"`
	Done    bool  `json:"done"`
	// Gone: the folder was deleted at Microsoft; it was dropped.
	Gone bool `json:"gone,omitempty"`
}

// EventRecord is an event for the app, written once per ID.
type EventRecord struct {
	ID   string         `json:"id"`
	Type string         `json:"type"`
	Data map[string]any `json:"data,omitempty"`
}

// RecordStateInput writes the workflow's state, settings and events into
// the registry row (the mailbox's, with MailboxID), in one transaction.
type RecordStateInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
	// Reason is a mailbox's reason for its state.
	Reason string `json:"reason,omitempty"`
	// SyncMode and PollReason, when set, are the mailbox's way of syncing.
	SyncMode   string `json:"syncMode,omitempty"`
	PollReason string `json:"pollReason,omitempty"`
	State      string `json:"state"`
	Mode       string `json:"mode,omitempty"`
	// Settings, when set, replace the registry's copy.
	Settings *Settings     `json:"settings,omitempty"`
	Events   []EventRecord `json:"events,omitempty"`
}

// SyncFoldersInput runs a delta round for every live folder.
type SyncFoldersInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
	UserID       string `json:"userId"`
	StoreBodies  bool   `json:"storeBodies"`
	// ContactFilter keeps only mail from or to the mailbox's contacts.
	ContactFilter bool `json:"contactFilter,omitempty"`
	// Bodies is the body storage policy (see BackfillInput).
	Bodies   string `json:"bodies,omitempty"`
	PageSize int    `json:"pageSize"`
	// Reanchor names folders (IDs or well-known names, "*" for all) to
	// re-anchor from scratch in this round.
	Reanchor []string `json:"reanchor,omitempty"`
	// MailboxSettingsEvery, when set, has the round read the mailbox's
	// mailboxSettings again if the last read is older (an application
	// connection's mailboxes, with MailboxSettings.Read).
	MailboxSettingsEvery time.Duration `json:"mailboxSettingsEvery,omitempty"`
}

// SyncFoldersResult counts what a round changed.
type SyncFoldersResult struct {
	Upserted int64 `json:"upserted"`
	Removed  int64 `json:"removed"`
	// Deferred counts the removals the folders' deltas reported; they are
	// applied when the round ends, and Removed counts those that deleted a
	// message (a message that moved to another synced folder stays).
	Deferred   int64 `json:"deferred,omitempty"`
	Reanchored int   `json:"reanchored"`
	// Gone are folders deleted at Microsoft, dropped with their mail.
	Gone []FolderRef `json:"gone,omitempty"`
}

// EnsureSubscriptionInput asks for one live subscription on the mailbox:
// a delegated connection's own, or (MailboxID set) one of an application
// connection's mailboxes, subscribed to with the connection's application
// token.
type EnsureSubscriptionInput struct {
	ConnectionID    string        `json:"connectionId"`
	MailboxID       string        `json:"mailboxId,omitempty"`
	UserID          string        `json:"userId"`
	NotificationURL string        `json:"notificationUrl"`
	LifecycleURL    string        `json:"lifecycleUrl"`
	Lifetime        time.Duration `json:"lifetime"`
	// Replace deletes the known subscriptions of the connection (of the
	// mailbox, with MailboxID) first.
	Replace bool `json:"replace"`
}

// SubscriptionResult describes the live subscription, or why push is not
// possible (then the connection polls).
type SubscriptionResult struct {
	ID         string    `json:"id,omitempty"`
	Expiration time.Time `json:"expiration,omitempty"`
	// Requested is when the expiration was asked for, on the activity's
	// clock: Expiration less Requested is the lifetime Graph granted, which
	// may differ from the one asked (docs/graph.md#subscription-lifetime).
	// Results recorded before it existed leave it zero.
	Requested time.Time `json:"requested,omitempty"`
	// PollReason is set when Graph refused the subscription (or, for an
	// application connection's mailbox, its renewal).
	PollReason string `json:"pollReason,omitempty"`
	// Gone: the subscription no longer exists at Graph.
	Gone bool `json:"gone,omitempty"`
}

// RenewSubscriptionInput renews (and so reauthorizes) a subscription.
type RenewSubscriptionInput struct {
	ConnectionID string `json:"connectionId"`
	// MailboxID names the application connection's mailbox the
	// subscription is on (empty: the connection's own).
	MailboxID      string        `json:"mailboxId,omitempty"`
	SubscriptionID string        `json:"subscriptionId"`
	Lifetime       time.Duration `json:"lifetime"`
}

// ConnectionRef names a connection; for DeleteSubscriptions, MailboxID
// narrows it to one of the connection's mailboxes.
type ConnectionRef struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
}

// RetentionInput applies the retention policy at disconnect.
type RetentionInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
	Policy       string `json:"policy"`
}

// RecordEventInput records an event for the app, once per ID.
type RecordEventInput struct {
	ConnectionID string         `json:"connectionId"`
	MailboxID    string         `json:"mailboxId,omitempty"`
	EventID      string         `json:"eventId"`
	Type         string         `json:"type"`
	Data         map[string]any `json:"data,omitempty"`
}

// FetchContactMailInput fetches the past mail of up to Batch contacts
// whose past mail was not fetched, from every synced folder, within each
// folder's window.
type FetchContactMailInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
	UserID       string `json:"userId"`
	StoreBodies  bool   `json:"storeBodies"`
	Bodies       string `json:"bodies,omitempty"`
	PageSize     int    `json:"pageSize"`
	Batch        int    `json:"batch"`
}

// FetchContactMailResult says what one batch fetched, and how many
// contacts still wait.
type FetchContactMailResult struct {
	Contacts  int64 `json:"contacts"`
	Messages  int64 `json:"messages"`
	Requests  int   `json:"requests"`
	Remaining int64 `json:"remaining"`
}

// ContactFilterInput names the mailbox whose contact filter was switched
// on: the mail it excludes is deleted.
type ContactFilterInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
}

// ContactFilterResult counts the messages deleted.
type ContactFilterResult struct {
	Deleted int64 `json:"deleted"`
}

// StripContentInput deletes what a mailbox's stored messages hold beyond
// a body policy.
type StripContentInput struct {
	ConnectionID string `json:"connectionId"`
	MailboxID    string `json:"mailboxId,omitempty"`
	Bodies       string `json:"bodies"`
}

// StripContentResult counts the messages changed.
type StripContentResult struct {
	Messages int64 `json:"messages"`
}
