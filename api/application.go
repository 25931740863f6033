package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// applicationRequest is the part of POST /v1/connections an application
// connection (kind application) takes: the tenant, the app's client ID and
// client secret, and which mailboxes to sync.
type applicationRequest struct {
	Tenant       string `json:"tenant,omitempty"`
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientCertificate is a certificate credential instead of a secret:
	// the certificate and its unencrypted private key, PEM.
	ClientCertificate string         `json:"client_certificate,omitempty"`
	SecretExpiry      *time.Time     `json:"client_secret_expires_at,omitempty"`
	Selection         *selectionJSON `json:"selection,omitempty"`
}

// selectionJSON is which of the tenant's mailboxes are synced.
type selectionJSON struct {
	Include []string `json:"include,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	Shared  bool     `json:"shared,omitempty"`
}

func (s selectionJSON) workflow() workflows.Selection {
	return workflows.Selection{Include: s.Include, Groups: s.Groups, Exclude: s.Exclude, Shared: s.Shared}
}

// appProblem answers a refused application credential with its reason as
// the code, and the permissions missing when that is the reason.
func appProblem(c *gin.Context, err error) bool {
	var ae *identity.AppError
	if !errors.As(err, &ae) {
		return false
	}
	c.Header("Content-Type", "application/problem+json")
	c.Abort()
	body := struct {
		Problem
		Missing []string `json:"missing_permissions,omitempty"`
	}{Problem{Type: "https://outlookd.dev/problems/" + string(ae.Reason), Title: http.StatusText(http.StatusUnprocessableEntity),
		Status: http.StatusUnprocessableEntity, Code: string(ae.Reason), Detail: ae.Text}, ae.Missing}
	c.PureJSON(http.StatusUnprocessableEntity, body)
	return true
}

// createApplication creates an application connection: the credential is
// checked at once and answered with what is wrong, if anything.
func (s *server) createApplication(c *gin.Context, who caller, req createRequest, owner, vis string, settings workflows.Settings) {
	if !who.Admin {
		problem(c, http.StatusForbidden, "admin_required", "Only an admin key may connect an application: it syncs the whole organisation's mail.")
		return
	}
	switch {
	case strings.TrimSpace(req.Tenant) == "":
		problem(c, http.StatusUnprocessableEntity, "tenant_required", "An application connection needs the tenant: the directory (tenant) ID or a verified domain of the organisation.")
		return
	case (req.ClientSecret == "") == (req.ClientCertificate == ""):
		problem(c, http.StatusUnprocessableEntity, "client_secret_required", "An application connection needs one credential: client_secret (the secret's value, from the app registration's Certificates & secrets) or client_certificate (the certificate uploaded there, with its private key, PEM).")
		return
	case req.SecretExpiry != nil && !req.SecretExpiry.After(time.Now()):
		problem(c, http.StatusUnprocessableEntity, "client_secret_expired", "client_secret_expires_at is in the past: that secret has expired; create a new one.")
		return
	case req.LoginHint != "":
		problem(c, http.StatusUnprocessableEntity, "invalid_field", "An application connection has no sign-in: leave login_hint out.")
		return
	}
	var sel workflows.Selection
	if req.Selection != nil {
		sel = req.Selection.workflow()
	}
	if err := sel.Validate(); err != nil {
		problem(c, http.StatusUnprocessableEntity, "invalid_selection", capitalize(err.Error())+".")
		return
	}
	var expires time.Time
	if req.SecretExpiry != nil {
		expires = req.SecretExpiry.UTC()
	}
	cctx, cancel := context.WithTimeout(c, 2*updateTimeout)
	defer cancel()
	id, err := s.d.Connect.CreateApplication(cctx, connect.AppRequest{OrgID: who.Org.ID, OwnerID: owner, Visibility: vis, Settings: settings,
		Selection: sel, SecretExpires: expires,
		Credential: identity.AppCredential{Tenant: strings.TrimSpace(req.Tenant), ClientID: req.ClientID, Secret: req.ClientSecret, CertificatePEM: req.ClientCertificate}})
	if appProblem(c, err) {
		return
	}
	if tc := (*connect.TenantConnectedError)(nil); errors.As(err, &tc) {
		problem(c, http.StatusConflict, "tenant_already_connected", "This organisation already syncs this tenant through the application connection "+tc.ConnectionID+
			"; a second would find every mailbox taken. Give it a new secret with PUT /v1/connections/"+tc.ConnectionID+"/credential, or disconnect it first.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	row, err := s.d.Store.GetConnection(c, id)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.Header("Location", "/v1/connections/"+row.ID)
	c.PureJSON(http.StatusCreated, s.present(c, row))
}

// rotateCredential gives an application connection a new client secret,
// checked before it replaces the old one; the connection resumes if it was
// waiting for it.
func (s *server) rotateCredential(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok {
		return
	}
	if row.Mode != workflows.ModeApplication {
		problem(c, http.StatusConflict, "not_application", "Only an application connection has a client credential; this one is "+row.Mode+".")
		return
	}
	var req struct {
		ClientSecret      string     `json:"client_secret,omitempty"`
		ClientCertificate string     `json:"client_certificate,omitempty"`
		SecretExpiry      *time.Time `json:"client_secret_expires_at,omitempty"`
	}
	if !bind(c, &req) {
		return
	}
	if (req.ClientSecret == "") == (req.ClientCertificate == "") {
		problem(c, http.StatusUnprocessableEntity, "client_secret_required", "Give one new credential: client_secret (its value) or client_certificate (PEM, with its private key).")
		return
	}
	if disconnected(c, row) {
		return
	}
	var expires time.Time
	if req.SecretExpiry != nil {
		if !req.SecretExpiry.After(time.Now()) {
			problem(c, http.StatusUnprocessableEntity, "client_secret_expired", "client_secret_expires_at is in the past: that secret has expired.")
			return
		}
		expires = req.SecretExpiry.UTC()
	}
	cctx, cancel := context.WithTimeout(c, 2*updateTimeout)
	defer cancel()
	st, err := s.d.Connect.RotateCredential(cctx, row.ID, req.ClientSecret, req.ClientCertificate, expires)
	if appProblem(c, err) {
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, s.presentStatus(c, row, &st))
}

// applicationJSON is an application connection's own part of its view:
// its credential (never the secret) and the progress of the whole tenant.
type applicationJSON struct {
	ClientID        string                  `json:"client_id,omitempty"`
	SecretExpiresAt *time.Time              `json:"client_secret_expires_at,omitempty"`
	Selection       selectionJSON           `json:"selection"`
	Progress        store.DirectoryProgress `json:"progress"`
	Syncing         int                     `json:"syncing"`
	Excluded        int                     `json:"excluded"`
	Discovery       *discoveryJSON          `json:"discovery,omitempty"`
	Onboarding      *onboardingJSON         `json:"onboarding,omitempty"`
}

// onboardingJSON is the backfill of joining mailboxes ahead of their
// workflows (docs/application.md#onboarding).
type onboardingJSON struct {
	Running   bool   `json:"running"`
	Mailboxes int64  `json:"mailboxes"`
	Completed int64  `json:"completed"`
	Messages  int64  `json:"messages"`
	LastError string `json:"last_error,omitempty"`
}

type discoveryJSON struct {
	Running     bool       `json:"running"`
	Rounds      int        `json:"rounds"`
	LastRoundAt *time.Time `json:"last_round_at,omitempty"`
	Joined      int64      `json:"joined"`
	Left        int64      `json:"left"`
	LastError   string     `json:"last_error,omitempty"`
}

// applicationView adds an application connection's progress to its view.
func (s *server) applicationView(ctx context.Context, v *connectionJSON, st *workflows.Status) {
	if v.Kind != workflows.ModeApplication {
		return
	}
	p, err := s.d.Store.DirectoryProgressOf(ctx, v.ID)
	if err != nil {
		s.d.Logger.Warn("directory progress", "connection", v.ID, "err", err)
		return
	}
	a := &applicationJSON{Progress: p, Syncing: p.ByStatus[store.DirSyncing] + p.ByStatus[store.DirJoining], Excluded: p.ByStatus[store.DirExcluded]}
	if st != nil && st.App != nil {
		a.ClientID, a.SecretExpiresAt = st.App.ClientID, timePtr(st.App.SecretExpires)
		a.Selection = selectionJSON{Include: st.App.Selection.Include, Groups: st.App.Selection.Groups, Exclude: st.App.Selection.Exclude, Shared: st.App.Selection.Shared}
		d := st.App.Discovery
		a.Discovery = &discoveryJSON{Running: d.More, Rounds: d.Rounds, LastRoundAt: timePtr(d.LastRound), Joined: d.Joined, Left: d.Left, LastError: d.LastError}
		p := st.App.Prefill
		a.Onboarding = &onboardingJSON{Running: p.Running || p.More, Mailboxes: p.Mailboxes, Completed: p.Done, Messages: p.Messages, LastError: p.LastError}
	}
	v.Application = a
}

// directoryUserJSON is a user of an application connection's tenant.
type directoryUserJSON struct {
	UserID      string    `json:"user_id"`
	Address     string    `json:"address,omitempty"`
	DisplayName string    `json:"display_name,omitempty"`
	Shared      bool      `json:"shared"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	MailboxID   string    `json:"mailbox_id,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

var directoryStatuses = []string{store.DirJoining, store.DirSyncing, store.DirLeaving, store.DirLeft, store.DirExcluded}

// listDirectory lists an application connection's users: synced,
// excluded (with the reason) or left; ?status= narrows, ?cursor= pages.
func (s *server) listDirectory(c *gin.Context) {
	row, ok := s.connection(c, accessRead)
	if !ok {
		return
	}
	if row.Mode != workflows.ModeApplication {
		problem(c, http.StatusConflict, "not_application", "Only an application connection has a directory; this one is "+row.Mode+".")
		return
	}
	status := c.Query("status")
	if status != "" && !slices.Contains(directoryStatuses, status) {
		problem(c, http.StatusBadRequest, "invalid_status", "status must be one of "+strings.Join(directoryStatuses, ", ")+".")
		return
	}
	limit, ok := limitParam(c, 100, 1000)
	if !ok {
		return
	}
	users, err := s.d.Store.ListDirectoryUsers(c, row.ID, status, c.Query("cursor"), limit)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	out := struct {
		Data       []directoryUserJSON `json:"data"`
		NextCursor string              `json:"next_cursor,omitempty"`
	}{Data: []directoryUserJSON{}}
	for _, u := range users {
		out.Data = append(out.Data, directoryUserJSON{UserID: u.UserID, Address: u.Address, DisplayName: u.DisplayName, Shared: u.Shared,
			Status: u.Status, Reason: u.Reason, MailboxID: u.MailboxID, UpdatedAt: u.UpdatedAt})
	}
	if len(users) == limit {
		out.NextCursor = users[len(users)-1].UserID
	}
	c.PureJSON(http.StatusOK, out)
}

// discover asks an application connection for a discovery round now,
// instead of at its next interval.
func (s *server) discover(c *gin.Context) {
	row, ok := s.connection(c, accessChange)
	if !ok {
		return
	}
	if row.Mode != workflows.ModeApplication {
		problem(c, http.StatusConflict, "not_application", "Only an application connection discovers mailboxes; this one is "+row.Mode+".")
		return
	}
	if disconnected(c, row) {
		return
	}
	st, ok := s.update(c, row.ID, workflows.UpdateDiscover)
	if !ok {
		return
	}
	c.PureJSON(http.StatusAccepted, s.presentStatus(c, row, &st))
}
