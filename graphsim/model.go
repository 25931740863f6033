package graphsim

import (
	"strings"
	"time"
)

// ConsumerTenantID is the tenant of personal Microsoft accounts
// (outlook.com, hotmail.com), as the real identity platform reports it.
const ConsumerTenantID = "9188040d-6c67-4c5b-b112-36a304b66dad"

// Tenant is an Entra ID directory, or the consumer tenant of personal accounts.
type Tenant struct {
	ID       string `json:"id"`
	Domain   string `json:"domain"`
	Name     string `json:"name"`
	Personal bool   `json:"personal"`
	// UserConsent says whether users may consent to apps themselves; when
	// false, sign-ins need a tenant-wide grant from an admin (AADSTS90094).
	UserConsent bool `json:"userConsent"`

	// delegated grants given tenant-wide by an admin: app ID -> scopes.
	adminGrants map[string]map[string]bool
	// application permissions (app roles) granted by an admin: app ID -> roles.
	appRoleGrants map[string]map[string]bool
	// dir tracks directory changes for /users/delta (docs/graph.md#users-delta).
	dir *directory
	// policies are the application access policies by app ID
	// (docs/graph.md#application-access-policies).
	policies map[string]*appPolicy
}

// SecretSpec is a client secret of an app registration.
type SecretSpec struct {
	ID      string    `json:"id"`
	Value   string    `json:"value"`
	Expires time.Time `json:"expires"`
}

// App is an app registration (a client).
type App struct {
	ClientID     string       `json:"clientId"`
	Name         string       `json:"name"`
	HomeTenant   string       `json:"homeTenant"`
	RedirectURIs []string     `json:"redirectUris"`
	Secrets      []SecretSpec `json:"secrets"`
	// Certificates are certificate credentials (docs/graph.md#certificate-credentials).
	Certificates []CertificateSpec `json:"certificates,omitempty"`
	// AppRoles are the application permissions it requests (for .default).
	AppRoles []string `json:"appRoles"`
	// AutoConsent is a simulator-only switch: a sign-in with a login_hint of
	// a known user is approved at once, without the HTML page.
	AutoConsent bool `json:"autoConsent"`
}

// Mailbox rights another user can be given on a mailbox.
const (
	RightRead      = "read"      // read items (Mail.Read.Shared)
	RightReadWrite = "readwrite" // change items (Mail.ReadWrite.Shared)
	RightSendAs    = "sendas"    // send as the mailbox (Mail.Send.Shared)
	// RightFullAccess is Exchange's Full Access (Add-MailboxPermission
	// -AccessRights FullAccess): read and change every item of the mailbox.
	RightFullAccess = "fullaccess"
	// RightSendOnBehalf is Exchange's Send on Behalf (Set-Mailbox
	// -GrantSendOnBehalfTo): mail goes out from the mailbox, with the
	// delegate as sender (docs/graph.md#mailbox-rights).
	RightSendOnBehalf = "sendonbehalf"
)

// User is a directory user or a shared mailbox (which cannot sign in).
type User struct {
	ID          string `json:"id"`
	TenantID    string `json:"tenantId"`
	UPN         string `json:"userPrincipalName"`
	Mail        string `json:"mail"`
	DisplayName string `json:"displayName"`
	Shared      bool   `json:"shared"`
	Admin       bool   `json:"admin"`
	// Sign-in conditions the sim enforces.
	RequireMFA      bool `json:"requireMfa"`
	BlockedByCA     bool `json:"blockedByConditionalAccess"`
	DeclinesConsent bool `json:"declinesConsent"`
	NoMailbox       bool `json:"noMailbox"`
	// SubscriptionsFull: the subscription quota is taken by other apps.
	SubscriptionsFull bool `json:"subscriptionsFull"`
	// AccountDisabled: sign-in is blocked (accountEnabled false).
	AccountDisabled bool `json:"accountDisabled"`
	// MaxMessageSize is the mailbox's own maximum message size
	// (Exchange's MaxSendSize); 0: SendingOptions.MaxMessageSize.
	MaxMessageSize int64 `json:"maxMessageSize,omitempty"`

	// consents: app ID -> delegated scopes the user consented to.
	consents map[string]map[string]bool
	// rights others have on this mailbox: user ID -> set of rights.
	rights map[string]map[string]bool
	// revokedAt and revokeReason: refresh tokens issued before are dead.
	revokedAt    time.Time
	revokeReason string
	mailbox      *mailbox
	// dirSeq is the directory change sequence of the user's last change.
	dirSeq int64
	// settings are the mailbox's settings (docs/graph.md#mailbox-settings).
	settings MailboxSettings
}

// Message is the stored form of a mail item.
type Message struct {
	ImmutableID       string
	restID            string
	moves             int
	FolderID          string
	InternetMessageID string
	ConversationID    string
	ConversationIndex string
	ChangeKey         string
	Subject           string
	BodyPreview       string
	BodyContentType   string
	Body              string
	From              Recipient
	Sender            Recipient
	To, Cc, Bcc       []Recipient
	ReplyTo           []Recipient
	Created           time.Time
	LastModified      time.Time
	Received          time.Time
	Sent              time.Time
	IsRead            bool
	IsDraft           bool
	Importance        string
	Categories        []string
	Flag              string
	Inference         string
	Attachments       []*Attachment
	headers           map[string]string // x- headers given at creation
	ExtProps          []ExtProp         // single-value extended properties (docs/graph.md#extended-properties)

	seq int64 // the mailbox change sequence of its last change
}

// Recipient is an email address with a display name.
type Recipient struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Attachment is a file attachment.
type Attachment struct {
	ID          string
	Name        string
	ContentType string
	Content     []byte
	IsInline    bool
	ContentID   string
	Modified    time.Time
}

// HasAttachments follows Graph: inline attachments do not count.
func (m *Message) HasAttachments() bool {
	for _, a := range m.Attachments {
		if !a.IsInline {
			return true
		}
	}
	return false
}

// Folder is a mail folder.
type Folder struct {
	ID          string
	ParentID    string
	DisplayName string
	WellKnown   string
	Hidden      bool
	children    []string
	items       map[string]*Message // messages in the folder by immutable ID
	// log of changes in this folder, in sequence order, for delta.
	log []logEntry
}

// logEntry records that at seq a message entered or changed in a folder
// (removed=false; valid while the message's seq and folder still match), or
// left it (removed=true, with the reason Graph reports).
type logEntry struct {
	seq     int64
	id      string // immutable ID
	restID  string // for removals: the REST ID the message had in the folder
	removed bool
}

// mailbox holds one user's folders and messages.
type mailbox struct {
	folders    map[string]*Folder
	wellKnown  map[string]string // name -> folder ID
	rootID     string
	messages   map[string]*Message // immutable ID -> message
	byRestID   map[string]string   // current REST ID -> immutable ID
	seq        int64
	generation int64 // bumped to expire every delta token of the mailbox
	// removed keeps the ground truth of what was deleted for good.
	deleted map[string]bool
	// emit receives every change, for change notifications.
	emit func(changeEvent)
}

// changeEvent is one change in a mailbox, as subscriptions see it.
type changeEvent struct {
	kind   string // created, updated, deleted, moved
	msg    *Message
	restID string // the REST ID the message had in from (deleted, moved)
	from   string // folder it was in (deleted, moved, updated)
	to     string // folder it is in now (created, moved, updated)
}

// wellKnownFolders are created in every mailbox (docs/graph.md#mail-folders), with their
// display names; hidden ones are marked.
var wellKnownFolders = []struct {
	name, display string
	hidden        bool
}{
	{"inbox", "Inbox", false},
	{"drafts", "Drafts", false},
	{"sentitems", "Sent Items", false},
	{"deleteditems", "Deleted Items", false},
	{"archive", "Archive", false},
	{"junkemail", "Junk Email", false},
	{"outbox", "Outbox", false},
	{"conversationhistory", "Conversation History", false},
	{"recoverableitemsdeletions", "Deletions", true},
}

func newMailbox(userID string) *mailbox {
	mb := &mailbox{
		folders:   map[string]*Folder{},
		wellKnown: map[string]string{},
		messages:  map[string]*Message{},
		byRestID:  map[string]string{},
		deleted:   map[string]bool{},
	}
	root := &Folder{ID: exchangeID("AAMkAGF", userID, "msgfolderroot"), DisplayName: "Top of Information Store", WellKnown: "msgfolderroot", items: map[string]*Message{}}
	mb.rootID = root.ID
	mb.folders[root.ID] = root
	mb.wellKnown["msgfolderroot"] = root.ID
	for _, wk := range wellKnownFolders {
		f := mb.addFolder(userID, root.ID, wk.display)
		f.WellKnown, f.Hidden = wk.name, wk.hidden
		mb.wellKnown[wk.name] = f.ID
	}
	return mb
}

func (mb *mailbox) addFolder(userID, parentID, name string) *Folder {
	f := &Folder{ID: exchangeID("AAMkAGF", userID, parentID, name, randomToken(6)), ParentID: parentID, DisplayName: name, items: map[string]*Message{}}
	mb.folders[f.ID] = f
	if p := mb.folders[parentID]; p != nil {
		p.children = append(p.children, f.ID)
	}
	return f
}

// folder resolves a folder ID or well-known name (any case, docs/graph.md#paths-and-ids).
func (mb *mailbox) folder(idOrName string) *Folder {
	if f := mb.folders[idOrName]; f != nil {
		return f
	}
	if id, ok := mb.wellKnown[strings.ToLower(idOrName)]; ok {
		return mb.folders[id]
	}
	return nil
}

// messageByID resolves an immutable or a current REST ID.
func (mb *mailbox) messageByID(id string) *Message {
	if m := mb.messages[id]; m != nil {
		return m
	}
	if imm, ok := mb.byRestID[id]; ok {
		return mb.messages[imm]
	}
	return nil
}

// restIDFor is the REST ID of a message after n moves: Graph's regular IDs
// change when a message moves (docs/graph.md#immutable-ids), immutable ones do not.
func restIDFor(immutableID string, moves int) string {
	return exchangeID("AAMkADI", immutableID, strings.Repeat("m", moves))
}

// touch records a change of m in its folder.
func (mb *mailbox) touch(m *Message, now time.Time) {
	mb.seq++
	m.seq = mb.seq
	m.LastModified = now
	m.ChangeKey = changeKey(m.ImmutableID, m.seq)
	f := mb.folders[m.FolderID]
	f.log = append(f.log, logEntry{seq: m.seq, id: m.ImmutableID})
}

// leave records that a message left its folder.
func (mb *mailbox) leave(m *Message) {
	mb.seq++
	f := mb.folders[m.FolderID]
	f.log = append(f.log, logEntry{seq: mb.seq, id: m.ImmutableID, restID: m.restID, removed: true})
}

func changeKey(id string, seq int64) string {
	return exchangeID("CQAAABYAAA", id, string(rune(seq)))[:40]
}

// insert adds a new message to the mailbox.
func (mb *mailbox) insert(m *Message, now time.Time) {
	m.restID = restIDFor(m.ImmutableID, 0)
	mb.messages[m.ImmutableID] = m
	mb.byRestID[m.restID] = m.ImmutableID
	mb.folders[m.FolderID].items[m.ImmutableID] = m
	mb.touch(m, now)
	mb.send(changeEvent{kind: "created", msg: m, to: m.FolderID})
}

// update records a change of a message's properties.
func (mb *mailbox) update(m *Message, now time.Time) {
	mb.touch(m, now)
	mb.send(changeEvent{kind: "updated", msg: m, from: m.FolderID, to: m.FolderID})
}

func (mb *mailbox) send(ev changeEvent) {
	if mb.emit != nil {
		mb.emit(ev)
	}
}

// move moves a message to another folder; its REST ID changes.
func (mb *mailbox) move(m *Message, to *Folder, now time.Time) {
	if m.FolderID == to.ID {
		return
	}
	ev := changeEvent{kind: "moved", msg: m, restID: m.restID, from: m.FolderID, to: to.ID}
	mb.leave(m)
	delete(mb.folders[m.FolderID].items, m.ImmutableID)
	to.items[m.ImmutableID] = m
	delete(mb.byRestID, m.restID)
	m.moves++
	m.restID = restIDFor(m.ImmutableID, m.moves)
	mb.byRestID[m.restID] = m.ImmutableID
	m.FolderID = to.ID
	mb.touch(m, now)
	mb.send(ev)
}

// remove deletes a message for good.
func (mb *mailbox) remove(m *Message) {
	mb.send(changeEvent{kind: "deleted", msg: m, restID: m.restID, from: m.FolderID})
	mb.leave(m)
	delete(mb.folders[m.FolderID].items, m.ImmutableID)
	delete(mb.byRestID, m.restID)
	delete(mb.messages, m.ImmutableID)
	mb.deleted[m.ImmutableID] = true
}

// folderMessages lists the messages currently in a folder, or in the whole
// mailbox when f is nil.
func (mb *mailbox) folderMessages(f *Folder) []*Message {
	src := mb.messages
	if f != nil {
		src = f.items
	}
	out := make([]*Message, 0, len(src))
	for _, m := range src {
		out = append(out, m)
	}
	return out
}
