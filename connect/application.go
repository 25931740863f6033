package connect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/workflows"
)

// AppChecker proves an application credential and keeps the token the
// proof obtained (activities.Credentials).
type AppChecker interface {
	Check(ctx context.Context, cred identity.AppCredential) (activities.AppCheck, error)
	StoreToken(ctx context.Context, connectionID string, chk activities.AppCheck) error
	// CheckGroups proves the token a check obtained can read the
	// selection's groups.
	CheckGroups(ctx context.Context, chk activities.AppCheck, groups []string) error
}

// AppRequest describes a new application connection.
type AppRequest struct {
	OrgID      string
	OwnerID    string
	Visibility string
	Settings   workflows.Settings
	Selection  workflows.Selection
	Credential identity.AppCredential
	// SecretExpires is when the client secret expires (zero: not said).
	SecretExpires time.Time
}

// TenantConnectedError refuses a second application connection of an
// organisation for a tenant (store.CreateApplicationConnection).
type TenantConnectedError = store.TenantConnectedError

// CreateApplication checks an application credential (a token, its
// permissions, a read of the directory), keeps it in Vault, registers the
// connection and starts its workflow, active. A credential refused is an
// *identity.AppError and leaves nothing behind.
func (s *Service) CreateApplication(ctx context.Context, r AppRequest) (string, error) {
	if err := r.Settings.Validate(); err != nil {
		return "", err
	}
	if err := r.Selection.Validate(); err != nil {
		return "", err
	}
	if s.Apps == nil {
		return "", errors.New("connect: no application checker configured")
	}
	r.Credential.ClientID = cmp.Or(r.Credential.ClientID, s.Identity.ClientID)
	chk, err := s.Apps.Check(ctx, r.Credential)
	if err != nil {
		return "", err
	}
	if len(r.Selection.Groups) > 0 {
		if err := s.Apps.CheckGroups(ctx, chk, r.Selection.Groups); err != nil {
			return "", err
		}
	}
	settings := r.Settings.WithDefaults()
	raw, err := json.Marshal(settings)
	if err != nil {
		return "", fmt.Errorf("connect: settings: %w", err)
	}
	id := "conn_" + random(12)
	cred := r.Credential
	if r.SecretExpires.IsZero() && cred.CertificatePEM != "" {
		if c, err := identity.ParseCertificate(cred.CertificatePEM); err == nil {
			r.SecretExpires = c.NotAfter
		}
	}
	if err := s.Tokens.PutAppCredential(ctx, id, vault.AppCredential{Tenant: cred.Tenant, ClientID: cred.ClientID, Secret: cred.Secret,
		Certificate: cred.CertificatePEM, SecretExpires: r.SecretExpires}); err != nil {
		return "", err
	}
	if err := s.Apps.StoreToken(ctx, id, chk); err != nil {
		s.undoCreate(ctx, id, false)
		return "", err
	}
	// One application connection per organisation and tenant: a second
	// would find every mailbox taken by the first (a POST sent again after
	// a timeout, a tenant written as its domain once and as its ID then).
	// The registry refuses it, with the credential just kept undone.
	row := store.Connection{ID: id, OrgID: r.OrgID, OwnerID: r.OwnerID, State: workflows.StateActive, Mode: workflows.ModeApplication,
		Visibility: r.Visibility, Settings: raw, TenantID: chk.TenantID, GrantedScopes: chk.Roles}
	if err := s.Store.CreateApplicationConnection(ctx, row); err != nil {
		s.undoCreate(ctx, id, false)
		return "", err
	}
	_, err = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                    workflows.ConnectionWorkflowID(id),
		TaskQueue:             cmp.Or(s.TaskQueue, workflows.TaskQueue),
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		TypedSearchAttributes: workflows.StartAttributes(id, workflows.ModeApplication, workflows.StateActive, chk.TenantID, ""),
		StaticSummary:         workflows.ConnectionSummary(id, workflows.ModeApplication, "", workflows.StateActive),
		StaticDetails:         workflows.ConnectionDetails(id, r.OrgID, r.OwnerID, workflows.ModeApplication, "", workflows.StateActive),
	}, workflows.Connection, workflows.ConnectionInput{ID: id, OrgID: r.OrgID, OwnerID: r.OwnerID, Mode: workflows.ModeApplication,
		Settings: settings, Options: s.Options, Application: &workflows.ApplicationInit{TenantID: chk.TenantID, ClientID: cred.ClientID,
			Roles: chk.Roles, Selection: r.Selection, SecretExpires: r.SecretExpires}})
	if err != nil {
		s.undoCreate(ctx, id, true)
		return "", fmt.Errorf("connect: start workflow: %w", err)
	}
	return id, nil
}

// RotateCredential checks a new client secret (or certificate, PEM with
// its key) of an application connection, for the tenant and client it has,
// stores it in Vault in place of the old one, and tells the workflow,
// which resumes if it was waiting for it. The old credential is used until
// the new one is stored, so there is no gap.
func (s *Service) RotateCredential(ctx context.Context, connectionID, secret, certificatePEM string, expires time.Time) (workflows.Status, error) {
	if s.Apps == nil {
		return workflows.Status{}, errors.New("connect: no application checker configured")
	}
	old, err := s.Tokens.GetAppCredential(ctx, connectionID)
	if err != nil {
		return workflows.Status{}, err
	}
	cred := identity.AppCredential{Tenant: old.Tenant, ClientID: old.ClientID, Secret: secret, CertificatePEM: certificatePEM}
	chk, err := s.Apps.Check(ctx, cred)
	if err != nil {
		return workflows.Status{}, err
	}
	if expires.IsZero() && certificatePEM != "" {
		if c, err := identity.ParseCertificate(certificatePEM); err == nil {
			expires = c.NotAfter
		}
	}
	if err := s.Tokens.PutAppCredential(ctx, connectionID, vault.AppCredential{Tenant: old.Tenant, ClientID: old.ClientID, Secret: secret,
		Certificate: certificatePEM, SecretExpires: expires}); err != nil {
		return workflows.Status{}, err
	}
	if err := s.Apps.StoreToken(ctx, connectionID, chk); err != nil {
		return workflows.Status{}, err
	}
	return s.update(ctx, connectionID, workflows.UpdateCredential, workflows.CredentialInput{SecretExpires: expires, Roles: chk.Roles})
}
