package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Body storage policies.
const (
	BodiesStore    = workflows.BodiesStore    // bodies are synced into Postgres
	BodiesOnDemand = workflows.BodiesOnDemand // fetched from Graph when a message is read
	BodiesNone     = workflows.BodiesNone     // never stored nor fetched; attachments not streamed
	BodiesMetadata = workflows.BodiesMetadata // headers only: none, without the attachments' metadata
)

// features is what a connection may do.
type features struct {
	Read bool `json:"read"`
	Send bool `json:"send"`
}

// storage is the storage part of the settings.
type storage struct {
	Bodies string `json:"bodies"`
}

// settingsPatch is the settings a request may give; absent fields keep
// their value (or default).
type settingsPatch struct {
	BackfillDays *int       `json:"backfill_days,omitempty"`
	Folders      folderList `json:"folders"`
	Storage      *storage   `json:"storage,omitempty"`
	Retention    *string    `json:"retention,omitempty"`
	PollMinutes  *int       `json:"poll_minutes,omitempty"`
	// ContactFilter stores only mail from or to the mailbox's contacts.
	ContactFilter *bool `json:"contact_filter,omitempty"`
	// RetentionDays deletes mail kept at a disconnect after so many days.
	RetentionDays *int `json:"retention_days,omitempty"`
}

// folderList is a folder list a request gives. Given says the field was
// there at all: a null is refused, not taken for an absent field.
type folderList struct {
	names []string
	given bool
}

// UnmarshalJSON notes that the field was given and reads the list.
func (f *folderList) UnmarshalJSON(b []byte) error {
	f.given = true
	if string(b) == "null" {
		f.names = nil
		return nil
	}
	return json.Unmarshal(b, &f.names)
}

// MarshalJSON writes the list (null when it was not given).
func (f folderList) MarshalJSON() ([]byte, error) { return json.Marshal(f.names) }

// checkFolders answers 400 invalid_folders when a folder list was given
// and is not one (workflows.ValidateFolders, or for a resync
// ValidateResyncFolders, says why); it says whether to go on. The
// workflow's update validators apply the same check.
func checkFolders(c *gin.Context, f folderList, resync bool) bool {
	if !f.given {
		return true
	}
	validate := workflows.ValidateFolders
	if resync {
		validate = workflows.ValidateResyncFolders
	}
	if err := validate(f.names); err != nil {
		problem(c, http.StatusBadRequest, "invalid_folders", capitalize(err.Error())+".")
		return false
	}
	return true
}

// appSettings are a connection's settings in full, as the API shows and
// stores them.
type appSettings struct {
	Features     features `json:"features"`
	BackfillDays int      `json:"backfill_days"`
	Folders      []string `json:"folders"`
	Storage      storage  `json:"storage"`
	Retention    string   `json:"retention"`
	PollMinutes  int      `json:"poll_minutes,omitempty"`
	// ContactFilter stores only mail from or to the mailbox's contacts.
	ContactFilter bool `json:"contact_filter"`
	// RetentionDays: mail kept at a disconnect is deleted so many days
	// after it (0: kept).
	RetentionDays int `json:"retention_days,omitempty"`
}

func defaultSettings(f features) appSettings {
	if !f.Read && !f.Send {
		f.Read = true
	}
	d := workflows.Settings{}.WithDefaults()
	return appSettings{Features: f, BackfillDays: d.BackfillDays, Folders: d.Folders, Storage: storage{Bodies: BodiesOnDemand}, Retention: d.Retention}
}

// apply merges a patch and validates the result.
func (s appSettings) apply(p settingsPatch) (appSettings, error) {
	if p.BackfillDays != nil {
		s.BackfillDays = *p.BackfillDays
	}
	if p.Folders.given {
		s.Folders = p.Folders.names
	}
	if p.Storage != nil {
		s.Storage = *p.Storage
	}
	if p.Retention != nil {
		s.Retention = *p.Retention
	}
	if p.PollMinutes != nil {
		s.PollMinutes = *p.PollMinutes
	}
	if p.ContactFilter != nil {
		s.ContactFilter = *p.ContactFilter
	}
	if p.RetentionDays != nil {
		s.RetentionDays = *p.RetentionDays
	}
	switch s.Storage.Bodies {
	case BodiesStore, BodiesOnDemand, BodiesNone, BodiesMetadata:
	default:
		return s, fmt.Errorf("storage.bodies must be %q, %q, %q or %q", BodiesStore, BodiesOnDemand, BodiesNone, BodiesMetadata)
	}
	if err := workflows.ValidateFolders(s.Folders); err != nil {
		return s, err
	}
	if p.PollMinutes != nil && *p.PollMinutes < 1 {
		return s, errors.New("poll_minutes must be between 1 and 1440")
	}
	return s, s.workflow().Validate()
}

// workflow converts the API's view of the settings to the one settings
// type, which the workflow owns.
func (s appSettings) workflow() workflows.Settings {
	return workflows.Settings{
		BackfillDays: s.BackfillDays, Folders: s.Folders, Bodies: s.Storage.Bodies,
		Features: workflows.Features{Read: s.Features.Read, Send: s.Features.Send}, Retention: s.Retention, PollMinutes: s.PollMinutes,
		ContactFilter: s.ContactFilter, KeepDays: s.RetentionDays,
	}
}

// toAppSettings is the API's view of a connection's settings.
func toAppSettings(w workflows.Settings) appSettings {
	w = w.WithDefaults()
	return appSettings{
		Features: features{Read: w.Features.Read, Send: w.Features.Send}, BackfillDays: w.BackfillDays, Folders: w.Folders,
		Storage: storage{Bodies: w.Bodies}, Retention: w.Retention, PollMinutes: w.PollMinutes, ContactFilter: w.ContactFilter,
		RetentionDays: w.KeepDays,
	}
}

// settingsOf reads the settings the workflow wrote into the registry.
func settingsOf(row store.Connection) appSettings {
	return toAppSettings(connect.SettingsOf(row))
}

// createRequest is the body of POST /v1/connections.
type createRequest struct {
	settingsPatch
	// Kind is delegated (a user's own mailbox, the default) or
	// service_account (shared mailboxes attached after consent).
	Kind       string    `json:"kind,omitempty"`
	Owner      string    `json:"owner,omitempty"`
	Visibility string    `json:"visibility,omitempty"`
	Features   *features `json:"features,omitempty"`
	ReturnURL  string    `json:"return_url,omitempty"`
	LoginHint  string    `json:"login_hint,omitempty"`
	applicationRequest
}

// connectionJSON is a connection as the API shows it.
type connectionJSON struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Owner      string `json:"owner"`
	Visibility string `json:"visibility"`
	// SharedWith are the app users a connection of visibility users is
	// shared with.
	SharedWith  []string `json:"shared_with,omitempty"`
	State       string   `json:"state"`
	SyncMode    string   `json:"sync_mode,omitempty"`
	PollReason  string   `json:"poll_reason,omitempty"`
	Reason      string   `json:"reason,omitempty"`
	ReasonText  string   `json:"reason_text,omitempty"`
	Mailbox     string   `json:"mailbox,omitempty"`
	DisplayName string   `json:"display_name,omitempty"`
	TenantID    string   `json:"tenant_id,omitempty"`
	// Account says what kind of Microsoft account the mailbox is, and the
	// limits its sends meet, once the tenant is known.
	Account       *accountJSON  `json:"account,omitempty"`
	GrantedScopes []string      `json:"granted_scopes"`
	Settings      appSettings   `json:"settings"`
	Backfill      *backfillJSON `json:"backfill,omitempty"`
	// Contacts is where the contact filter's fetches stand.
	Contacts     *contactsStatusJSON `json:"contacts,omitempty"`
	MessageCount int64               `json:"message_count"`
	NextAction   string              `json:"next_action,omitempty"`
	NextActionAt *time.Time          `json:"next_action_at,omitempty"`
	LastSyncAt   *time.Time          `json:"last_sync_at,omitempty"`
	// Behind: notifications for the mailbox may have been refused since
	// last_sync_at (the last round that saw Graph's state); a catch-up
	// round is due.
	Behind     bool       `json:"behind,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	DetachedAt *time.Time `json:"detached_at,omitempty"`
	// Source says where the state came from: the workflow, or the
	// registry when Temporal could not be asked.
	Source       string `json:"source"`
	AuthorizeURL string `json:"authorize_url,omitempty"`
	// AdminConsent is the link for the tenant's administrator, while the
	// connection is admin_consent_required.
	AdminConsent *adminConsentLinkJSON `json:"admin_consent,omitempty"`
	// TenantConsent is the admin consent of the connection's tenant.
	TenantConsent *tenantConsentJSON `json:"tenant_consent,omitempty"`
	// Application is an application connection's credential (never its
	// secret) and the progress of its tenant's mailboxes.
	Application *applicationJSON `json:"application,omitempty"`
}

type backfillJSON struct {
	Running bool `json:"running"`
	// Missing are folders the settings name that the mailbox lacks.
	Missing     []string           `json:"missing_folders,omitempty"`
	CoveredFrom *time.Time         `json:"covered_from,omitempty"`
	CompletedAt *time.Time         `json:"completed_at,omitempty"`
	Fetched     int64              `json:"fetched"`
	Folders     []folderProgressJS `json:"folders"`
	// StartedAt, Total, Percent and EstimatedEnd describe the backfill
	// under way (workflows.BackfillEstimate).
	StartedAt    *time.Time `json:"started_at,omitempty"`
	Total        int64      `json:"total,omitempty"`
	Percent      *float64   `json:"percent,omitempty"`
	EstimatedEnd *time.Time `json:"estimated_end,omitempty"`
}

type folderProgressJS struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Fetched int64  `json:"fetched"`
	Done    bool   `json:"done"`
	// Total is Graph's item count of the folder (mail before the window
	// too); Percent is fetched of it (100 once done).
	Total   int64   `json:"total"`
	Percent float64 `json:"percent"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

var idPattern = regexp.MustCompile(`^conn_[A-Za-z0-9_-]{16}$`)

// malformedID says what is wrong with a connection ID that is not one,
// where a copy from a terminal or a JSON answer explains it: quotes,
// spaces or a line break around the ID. It says nothing of any
// connection, only of the text sent.
func malformedID(id string) string {
	trimmed := strings.Trim(id, " \t\r\n\"'<>`")
	switch {
	case trimmed != id && idPattern.MatchString(trimmed):
		return fmt.Sprintf(" The ID in the path has quotes, spaces or a line break around it: send %s alone.", trimmed)
	case !strings.HasPrefix(trimmed, "conn_"):
		return " A connection ID starts with conn_ (the id of POST /v1/connections' answer)."
	}
	return " A connection ID is conn_ and 16 letters, digits, - or _."
}

// access is what a request does with a connection.
type access int

const (
	// accessRead reads it: its status, folders, messages and attachments,
	// its sends and contacts. Sharing a connection (with the organisation,
	// or with named users) grants this.
	accessRead access = iota
	// accessChange changes it: its settings, its visibility, a resync, a
	// new sign-in, a disconnect, a send. Only its owner and the
	// organisation's admin keys may.
	accessChange
)

// connection loads the connection named in the path, if the caller may
// see it and do with it what the request does; otherwise it answers the
// problem: 404 for a connection the caller may not see (never 403: other
// organisations' connections, and other users' unshared ones, do not
// exist for the caller), 403 not_owner for one shared with the caller that
// the request would change. It answers before the request does anything.
func (s *server) connection(c *gin.Context, want access) (store.Connection, bool) {
	id := c.Param("id")
	if !idPattern.MatchString(id) {
		problem(c, http.StatusNotFound, "connection_not_found", "No connection with this ID is visible to you."+malformedID(id))
		return store.Connection{}, false
	}
	row, err := s.d.Store.GetConnection(c, id)
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "connection_not_found", "No connection with this ID is visible to you.")
		return store.Connection{}, false
	}
	if err != nil {
		s.unavailable(c, err)
		return store.Connection{}, false
	}
	switch authorize(callerOf(c), row, want) {
	case http.StatusNotFound:
		problem(c, http.StatusNotFound, "connection_not_found", "No connection with this ID is visible to you.")
		return store.Connection{}, false
	case http.StatusForbidden:
		problem(c, http.StatusForbidden, "not_owner", "This connection is shared with you for reading; only its owner or an admin key may change its settings or visibility, resync, re-authorize or disconnect it.")
		return store.Connection{}, false
	}
	return row, true
}

// authorize is the rule of who may do what with a connection: the status
// a request is answered with before it does anything (0: it may go on).
// Reading needs the connection visible to the caller (404 otherwise);
// changing it needs the caller to be its owner or an admin key (403 when
// it is only shared with the caller).
func authorize(who caller, row store.Connection, want access) int {
	switch {
	case !visible(who, row):
		return http.StatusNotFound
	case want == accessChange && !mayChange(who, row):
		return http.StatusForbidden
	}
	return 0
}

// visible says whether the caller may see (and read) a connection: its
// owner, every user of its organisation when it is shared with the
// organisation, the users it is shared with by name, and the
// organisation's admin keys.
func visible(who caller, row store.Connection) bool {
	if row.OrgID != who.Org.ID {
		return false
	}
	switch {
	case who.Admin || who.User == "" || row.OwnerID == who.User:
		return true
	case row.Visibility == store.VisibilityOrganisation:
		return true
	case row.Visibility == store.VisibilityUsers:
		return slices.Contains(row.SharedWith, who.User)
	}
	return false
}

// mayChange says whether the caller may change a connection: its owner
// and the organisation's admin keys only; sharing is for reading.
func mayChange(who caller, row store.Connection) bool {
	return row.OrgID == who.Org.ID && (who.Admin || (who.User != "" && row.OwnerID == who.User))
}

func (s *server) unavailable(c *gin.Context, err error) {
	s.d.Logger.Error("dependency failed", "path", c.FullPath(), "err", err)
	problem(c, http.StatusServiceUnavailable, "unavailable", "A service outlookd depends on did not answer; retry shortly.")
}

func (s *server) createConnection(c *gin.Context) {
	who := callerOf(c)
	var req createRequest
	if !bind(c, &req) {
		return
	}
	owner := req.Owner
	switch {
	case owner == "":
		owner = who.User
	case owner != who.User && !who.Admin:
		problem(c, http.StatusForbidden, "owner_mismatch", "Only an admin key may create a connection for another user; leave owner out.")
		return
	}
	if owner == "" {
		problem(c, http.StatusBadRequest, "owner_required", "An admin key must name the owner of the connection.")
		return
	}
	kind := cmp.Or(req.Kind, workflows.ModeDelegated)
	switch kind {
	case workflows.ModeDelegated:
	case workflows.ModeServiceAccount:
		if !who.Admin {
			problem(c, http.StatusForbidden, "admin_required", "Only an admin key may connect a service account: its shared mailboxes serve the whole organisation.")
			return
		}
	case workflows.ModeApplication:
	default:
		problem(c, http.StatusUnprocessableEntity, "invalid_kind", `kind must be "delegated", "service_account" or "application".`)
		return
	}
	if kind != workflows.ModeApplication && (req.Tenant != "" || req.ClientSecret != "" || req.ClientCertificate != "" || req.ClientID != "" || req.Selection != nil || req.SecretExpiry != nil) {
		problem(c, http.StatusUnprocessableEntity, "invalid_field", "tenant, client_id, client_secret, client_secret_expires_at and selection are for kind application only.")
		return
	}
	vis := req.Visibility
	if vis == "" {
		vis = store.VisibilityOwner
	}
	if vis != store.VisibilityOwner && vis != store.VisibilityOrganisation {
		problem(c, http.StatusUnprocessableEntity, "invalid_visibility", `visibility must be "owner" or "organisation" at creation; share with named users afterwards (PUT /v1/connections/{id}/visibility).`)
		return
	}
	if req.ReturnURL != "" {
		if _, ok := absoluteHTTP(req.ReturnURL); !ok {
			problem(c, http.StatusUnprocessableEntity, "invalid_return_url", "return_url must be an absolute http(s) URL of at most 2048 characters.")
			return
		}
	}
	f := features{Read: true}
	if req.Features != nil {
		f = *req.Features
	}
	if !f.Read && !f.Send {
		problem(c, http.StatusUnprocessableEntity, "invalid_features", "A connection needs at least one feature: read or send.")
		return
	}
	if !checkFolders(c, req.Folders, false) {
		return
	}
	hint, ok := loginHint(c, req.LoginHint)
	if !ok {
		return
	}
	settings, err := defaultSettings(f).apply(req.settingsPatch)
	if err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_settings", capitalize(err.Error())+".")
		return
	}
	if kind == workflows.ModeApplication {
		s.createApplication(c, who, req, owner, vis, settings.workflow())
		return
	}
	cctx, cancel := context.WithTimeout(c, updateTimeout)
	defer cancel()
	created, err := s.d.Connect.Create(cctx, connect.Request{
		OrgID: who.Org.ID, OwnerID: owner, Mode: kind, Settings: settings.workflow(), LoginHint: hint,
		Visibility: vis, ReturnURL: req.ReturnURL, MaxPerOwner: maxPerOwner(kind, who.Org.ConnectionsPerUser),
	})
	if errors.Is(err, store.ErrTooManyConnections) {
		problem(c, http.StatusConflict, "user_already_connected", "This user already has a connection, and the organisation allows "+strconv.Itoa(who.Org.ConnectionsPerUser)+" per user; disconnect it first.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	row, err := s.d.Store.GetConnection(c, created.ConnectionID)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := s.present(c, row)
	out.AuthorizeURL = created.AuthorizeURL
	c.Header("Location", "/v1/connections/"+row.ID)
	c.PureJSON(http.StatusCreated, out)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// present builds the view of a connection: the workflow's status when
// Temporal answers quickly, the registry's mirror otherwise.
func (s *server) present(ctx context.Context, row store.Connection) connectionJSON {
	return s.presentAll(ctx, []store.Connection{row})[0]
}

// presentStatus is present with the status an update just answered, so
// the workflow is not asked again (nil: ask it).
func (s *server) presentStatus(ctx context.Context, row store.Connection, st *workflows.Status) connectionJSON {
	if st == nil {
		return s.present(ctx, row)
	}
	counts, err := s.d.Store.CountMessagesOf(ctx, []string{row.ID})
	if err != nil {
		s.d.Logger.Warn("count messages", "err", err)
	}
	out := []connectionJSON{view(row, counts[row.ID], st)}
	s.adminConsentViews(ctx, []store.Connection{row}, out)
	s.applicationView(ctx, &out[0], st)
	return out[0]
}

// presentAll builds the views of a page of connections: their message
// counts in one query, and their status queries in parallel under one
// deadline, so a Temporal that does not answer costs a page statusTimeout,
// not statusTimeout per connection.
func (s *server) presentAll(ctx context.Context, rows []store.Connection) []connectionJSON {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	counts, err := s.d.Store.CountMessagesOf(ctx, ids)
	if err != nil {
		s.d.Logger.Warn("count messages", "err", err)
	}
	statuses := make([]*workflows.Status, len(rows))
	closed := make([]bool, len(rows))
	qctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(8)
	for i, id := range ids {
		if rows[i].State == workflows.StateDisconnected {
			continue // the registry knows all there is
		}
		g.Go(func() error {
			st, err := s.queryStatus(qctx, id)
			switch {
			case err == nil:
				statuses[i] = &st
			case errors.Is(err, errWorkflowClosed):
				closed[i] = true
			}
			return nil
		})
	}
	_ = g.Wait()
	out := make([]connectionJSON, len(rows))
	for i, r := range rows {
		out[i] = view(r, counts[r.ID], statuses[i])
		s.applicationView(ctx, &out[i], statuses[i])
		if closed[i] {
			orphaned(&out[i])
		}
	}
	s.adminConsentViews(ctx, rows, out)
	return out
}

// view is a connection as the API shows it, from the registry row and
// (when Temporal answered) the workflow's status.
func view(row store.Connection, count int64, st *workflows.Status) connectionJSON {
	out := connectionJSON{
		ID: row.ID, Kind: row.Mode, Owner: row.OwnerID, Visibility: row.Visibility, SharedWith: row.SharedWith, State: row.State, Mailbox: row.Mailbox, DisplayName: row.DisplayName,
		TenantID: row.TenantID, GrantedScopes: row.GrantedScopes, Settings: settingsOf(row), CreatedAt: row.CreatedAt, UpdatedAt: row.UpdatedAt,
		DetachedAt: row.DetachedAt, Source: "registry", MessageCount: count,
	}
	if out.GrantedScopes == nil {
		out.GrantedScopes = []string{}
	}
	out.Account = accountOf(out.TenantID)
	if st == nil {
		return out
	}
	out.Source = "workflow"
	out.State, out.Reason, out.ReasonText = st.State, st.Reason, st.ReasonText
	out.SyncMode, out.PollReason = st.Sync.Mode, st.Sync.PollReason
	if st.Mailbox != "" {
		out.Mailbox, out.DisplayName, out.TenantID = st.Mailbox, st.DisplayName, st.TenantID
	}
	if len(st.GrantedScopes) > 0 {
		out.GrantedScopes = st.GrantedScopes
	}
	if len(st.Settings.Folders) > 0 {
		out.Settings = toAppSettings(st.Settings)
	}
	out.NextAction, out.NextActionAt, out.LastSyncAt = st.NextAction, timePtr(st.NextActionAt), timePtr(st.Sync.LastSync)
	out.Behind = st.Sync.Behind
	b := &backfillJSON{Running: st.Backfill.Running, CoveredFrom: timePtr(st.Backfill.Covered), CompletedAt: timePtr(st.Backfill.Completed),
		Folders: []folderProgressJS{}, Missing: st.Backfill.Missing}
	for _, f := range st.Backfill.Folders {
		b.Fetched += f.Fetched
		fp := folderProgressJS{ID: f.ID, Name: f.Name, Fetched: f.Fetched, Done: f.Done, Total: f.Total, Percent: 100}
		if !f.Done && f.Total > 0 {
			fp.Percent = min(100, math.Round(1000*float64(f.Fetched)/float64(f.Total))/10)
		} else if !f.Done {
			fp.Percent = 0
		}
		b.Folders = append(b.Folders, fp)
	}
	if p := st.Progress; p != nil {
		b.StartedAt, b.Total, b.Percent, b.EstimatedEnd = timePtr(st.Backfill.Started), p.Total, &p.Percent, timePtr(p.EstimatedEnd)
	}
	slices.SortFunc(b.Folders, func(x, y folderProgressJS) int { return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.ID, y.ID)) })
	out.Backfill = b
	out.Contacts = contactsStatus(st)
	out.Account = accountOf(out.TenantID)
	return out
}

// accountJSON is the kind of Microsoft account a mailbox is, and what
// differs for it: a personal account (Outlook.com) sends to fewer
// recipients than a work or school one (Exchange Online), and has no
// tenant for admin consent, shared mailboxes or application permissions.
type accountJSON struct {
	Type    string         `json:"type"` // "personal" or "work_or_school"
	Sending sendLimitsJSON `json:"sending"`
}

// sendLimitsJSON are the sending limits a send is checked against before
// Graph (docs/sending.md#limits).
type sendLimitsJSON struct {
	RecipientsPerMessage int `json:"recipients_per_message"`
	RecipientsPerDay     int `json:"recipients_per_day"`
	MessagesPerMinute    int `json:"messages_per_minute"`
}

// accountOf describes the account of a tenant ("": not known yet).
func accountOf(tenantID string) *accountJSON {
	switch tenantID {
	case "":
		return nil
	case consumerTenant:
		return &accountJSON{Type: "personal", Sending: sendLimitsJSON{PersonalMaxRecipients, PersonalDailyRecipients, SendsPerMinute}}
	default:
		return &accountJSON{Type: "work_or_school", Sending: sendLimitsJSON{MaxRecipients, DailyRecipients, SendsPerMinute}}
	}
}

// orphaned marks the view of a connection whose workflow ended without
// disconnecting it (an operator terminated it, or it failed): nothing runs
// for it until it is disconnected, which cleans it up.
func orphaned(v *connectionJSON) {
	if v.State == workflows.StateDisconnected {
		return
	}
	v.Reason = workflows.ReasonWorkflowEnded
	v.ReasonText = "The connection's workflow ended in Temporal without disconnecting (it was terminated or failed); nothing syncs. Disconnect it to clean up."
	v.NextAction = "disconnect to clean up"
}

// statusTimeout bounds the status query; past it the registry answers.
// updateTimeout bounds an update (the handlers answer at once; only an
// unreachable Temporal takes long).
const (
	statusTimeout = 3 * time.Second
	updateTimeout = 10 * time.Second
)

func (s *server) status(ctx context.Context, id string) (workflows.Status, error) {
	qctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return s.queryStatus(qctx, id)
}

// errWorkflowClosed: the connection's workflow is not running (it ended
// disconnected, or an operator terminated it, or it failed); the registry
// tells the rest.
var errWorkflowClosed = errors.New("the connection's workflow is closed")

// queryStatus asks the running workflow for its status (the caller bounds
// it); a closed workflow is not asked.
func (s *server) queryStatus(ctx context.Context, id string) (workflows.Status, error) {
	return s.queryWorkflow(ctx, workflows.ConnectionWorkflowID(id))
}

// queryWorkflow asks a running connection or mailbox workflow for its
// status; errWorkflowClosed when it is not running.
func (s *server) queryWorkflow(ctx context.Context, workflowID string) (workflows.Status, error) {
	resp, err := s.d.Temporal.QueryWorkflowWithOptions(ctx, &client.QueryWorkflowWithOptionsRequest{
		WorkflowID: workflowID, QueryType: workflows.QueryStatus,
		QueryRejectCondition: enums.QUERY_REJECT_CONDITION_NOT_OPEN,
	})
	if err != nil {
		var gone *serviceerror.NotFound
		if errors.As(err, &gone) {
			return workflows.Status{}, errWorkflowClosed
		}
		return workflows.Status{}, err
	}
	if resp.QueryRejected != nil {
		return workflows.Status{}, errWorkflowClosed
	}
	var st workflows.Status
	return st, resp.QueryResult.Get(&st)
}

func (s *server) getConnection(c *gin.Context) {
	row, ok := s.connection(c, accessRead)
	if !ok {
		return
	}
	c.PureJSON(http.StatusOK, s.present(c, row))
}

func (s *server) listConnections(c *gin.Context) {
	who := callerOf(c)
	limit, ok := limitParam(c, 50, 200)
	if !ok {
		return
	}
	after := c.Query("cursor")
	if after != "" && !idPattern.MatchString(after) {
		problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out.")
		return
	}
	if after != "" && !s.cursorConnection(c, who, after) {
		return
	}
	user := who.User
	if who.Admin {
		user = ""
	}
	rows, err := s.d.Store.ListConnections(c, store.ConnectionFilter{OrgID: who.Org.ID, User: user, After: after, Limit: limit + 1})
	if err != nil {
		s.unavailable(c, err)
		return
	}
	page := struct {
		Data       []connectionJSON `json:"data"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}{Data: []connectionJSON{}}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = rows[limit-1].ID
	}
	page.Data = append(page.Data, s.presentAll(c, rows)...)
	c.PureJSON(http.StatusOK, page)
}

// cursorConnection checks a connection list cursor: it is the ID of the
// last connection of a page the caller was given, so it names a connection
// the caller can see (connections are never deleted). Otherwise it answers
// the problem: a made-up ID would page from an arbitrary place, or past
// the end, without a word.
func (s *server) cursorConnection(c *gin.Context, who caller, cursor string) bool {
	row, err := s.d.Store.GetConnection(c, cursor)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !visible(who, row)) {
		problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out.")
		return false
	}
	if err != nil {
		s.unavailable(c, err)
		return false
	}
	return true
}

func limitParam(c *gin.Context, def, max int) (int, bool) {
	v := c.Query("limit")
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		problem(c, http.StatusBadRequest, "invalid_limit", "limit must be a whole number from 1 to "+strconv.Itoa(max)+".")
		return 0, false
	}
	return n, true
}

// disconnected answers 409 connection_ended for a connection the registry
// shows disconnected. That state is final and written before the workflow
// takes it, so the workflow may still be finishing: it is not asked.
func disconnected(c *gin.Context, row store.Connection) bool {
	if row.State != workflows.StateDisconnected {
		return false
	}
	problem(c, http.StatusConflict, "connection_ended", "This connection is disconnected; create a new one.")
	return true
}

// update runs a workflow update; on failure it answers the problem: a
// validator's rejection or an ended workflow is a 409 with a sentence,
// anything else means Temporal could not be reached.
func (s *server) update(c *gin.Context, id, name string, args ...any) (workflows.Status, bool) {
	st, err := s.runUpdate(c, id, name, args...)
	if err == nil {
		return st, true
	}
	var rejected *temporal.ApplicationError
	switch {
	case connect.Ended(err):
		problem(c, http.StatusConflict, "connection_ended", "This connection's workflow has ended; disconnect it to clean up, or create a new one.")
	case errors.As(err, &rejected) && rejected.Type() == workflows.ErrSettingsNotRecorded:
		s.d.Logger.Error("settings not recorded", "err", err)
		problem(c, http.StatusServiceUnavailable, "unavailable", "The registry could not record the settings, so they are unchanged; retry shortly.")
	case errors.As(err, &rejected):
		problem(c, http.StatusConflict, "invalid_state", capitalize(strings.TrimSuffix(rejected.Message(), "."))+".")
	default:
		s.unavailable(c, err)
	}
	return st, false
}

func (s *server) runUpdate(ctx context.Context, id, name string, args ...any) (workflows.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, updateTimeout)
	defer cancel()
	h, err := s.d.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.ConnectionWorkflowID(id), UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	var st workflows.Status
	if err == nil {
		err = h.Get(ctx, &st)
	}
	return st, err
}

func (s *server) reauthorize(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok {
		return
	}
	var req struct {
		LoginHint string `json:"login_hint,omitempty"`
	}
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	if disconnected(c, row) {
		return
	}
	st, err := s.status(c, row.ID)
	if errors.Is(err, errWorkflowClosed) {
		// Not running, yet not disconnected: a connection that never got
		// past its first consent starts a fresh workflow (nothing was
		// obtained, so nothing is lost); any other cannot take up where it
		// was, and says what to do.
		err = s.d.Connect.Restart(c, row)
		if errors.Is(err, connect.ErrNotRestartable) {
			problem(c, http.StatusConflict, "connection_ended", "This connection's workflow has ended, so it cannot be re-authorized; disconnect it (DELETE /v1/connections/"+row.ID+") to clean up, then create a new one.")
			return
		}
		st = workflows.Status{ConnectionState: workflows.ConnectionState{ID: row.ID, State: workflows.StatePendingConsent}}
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	if st.State != workflows.StateReauthRequired && st.State != workflows.StatePendingConsent && st.State != workflows.StateAdminConsentRequired {
		problem(c, http.StatusConflict, "invalid_state", "Only a connection waiting for consent or for a new sign-in can be re-authorized; this one is "+st.State+".")
		return
	}
	hint, ok := loginHint(c, req.LoginHint)
	if !ok {
		return
	}
	if hint == "" && st.State != workflows.StatePendingConsent {
		hint = st.Mailbox // the same account must come back
	}
	authURL, err := s.d.Connect.Reauthorize(c, row.ID, row.Mode, settingsOf(row).workflow(), hint)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := s.present(c, row)
	out.AuthorizeURL = authURL
	c.PureJSON(http.StatusOK, out)
}

// loginHint checks the account a sign-in is for: the space around it (a
// paste from a terminal, a newline included) is dropped, and what is left
// must be one address, which Microsoft's sign-in page is given as it is.
func loginHint(c *gin.Context, hint string) (string, bool) {
	hint = strings.TrimSpace(hint)
	if hint == "" {
		return "", true
	}
	if _, err := workflows.ParseAddress(hint); err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_login_hint", fmt.Sprintf("login_hint %q is not a sign-in address; give the account's address, such as adele@contoso.com, or leave it out.", hint))
		return "", false
	}
	return hint, true
}

func (s *server) resync(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok || disconnected(c, row) {
		return
	}
	var req struct {
		Folders folderList `json:"folders"`
	}
	if c.Request.ContentLength != 0 && !bind(c, &req) {
		return
	}
	if !checkFolders(c, req.Folders, true) {
		return
	}
	st, ok := s.update(c, row.ID, workflows.UpdateResync, workflows.ResyncInput{Folders: req.Folders.names})
	if !ok {
		return
	}
	c.PureJSON(http.StatusAccepted, s.presentStatus(c, row, &st))
}

func (s *server) patchSettings(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok || disconnected(c, row) {
		return
	}
	var p settingsPatch
	if !bind(c, &p) || !checkFolders(c, p.Folders, false) {
		return
	}
	settings, err := settingsOf(row).apply(p)
	if err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_settings", capitalize(err.Error())+".")
		return
	}
	// The workflow validates, applies, and writes the registry before it
	// answers: a refused change leaves both as they were.
	st, ok := s.update(c, row.ID, workflows.UpdateSettings, settings.workflow())
	if !ok {
		return
	}
	c.PureJSON(http.StatusOK, s.presentStatus(c, row, &st))
}

func (s *server) deleteConnection(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok {
		return
	}
	// Disconnecting twice is not an error: the workflow answers a second
	// request with the saga under way, and an ended one is answered as it
	// is. A connection whose workflow was terminated is cleaned up by a new
	// run of its workflow.
	ctx, cancel := context.WithTimeout(c, updateTimeout)
	defer cancel()
	st, err := s.d.Connect.Disconnect(ctx, row)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	var answered *workflows.Status
	if st.State != workflows.StateDisconnected || st.Settings.Folders != nil {
		answered = &st
	}
	c.Header("Location", "/v1/connections/"+row.ID)
	c.PureJSON(http.StatusAccepted, s.presentStatus(c, row, answered))
}

// repair takes up again the workflow of a connection an operator
// terminated in Temporal (or that failed): connect.Repair resets the ended
// run to its last completed workflow task, so the connection goes on from
// where it was. An operator's action: admin keys only.
func (s *server) repair(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok {
		return
	}
	if !callerOf(c).Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may repair a connection's workflow.")
		return
	}
	if disconnected(c, row) {
		return
	}
	ctx, cancel := context.WithTimeout(c, updateTimeout)
	defer cancel()
	done, err := s.d.Connect.Repair(ctx, row)
	if s.repairRefused(c, err, "connection", "POST /v1/connections/"+row.ID+"/resync re-reads its mailbox.",
		"disconnect it (DELETE /v1/connections/"+row.ID+") to clean up, then create a new one.") {
		return
	}
	s.d.Logger.Info("connection workflow repaired", "connection", row.ID, "run", done.RunID, "restarted", done.Restarted)
	out := s.present(c, row)
	if done.Restarted {
		authURL, err := s.d.Connect.Reauthorize(c, row.ID, row.Mode, settingsOf(row).workflow(), "")
		if err != nil {
			s.unavailable(c, err)
			return
		}
		out.AuthorizeURL = authURL
	}
	c.PureJSON(http.StatusOK, out)
}

// repairRefused answers a repair that did not happen, and says whether it
// did: the workflow of the connection or mailbox (what) runs, and resync
// says how to re-read it instead; or it cannot be taken up again, and
// cleanUp says what to do; or Temporal could not be reached.
func (s *server) repairRefused(c *gin.Context, err error, what, resync, cleanUp string) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, connect.ErrWorkflowRunning):
		problem(c, http.StatusConflict, "workflow_running", "This "+what+"'s workflow is running, so there is nothing to repair; "+resync)
	case errors.Is(err, connect.ErrNotRepairable):
		problem(c, http.StatusConflict, "not_repairable", "This "+what+"'s workflow ended by itself or Temporal no longer keeps its history, so it cannot be taken up again; "+cleanUp)
	default:
		s.unavailable(c, err)
	}
	return true
}

// maxPerOwner is the limit of live connections per owner a create is held
// to: the organisation's, for users' own mailboxes only.
func maxPerOwner(kind string, perUser int) int {
	if kind != workflows.ModeDelegated {
		return 0
	}
	return perUser
}
