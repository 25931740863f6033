package graphsim

import (
	"fmt"
)

// DemoOptions configures the demo tenant.
type DemoOptions struct {
	// RedirectURIs of the demo app (outlookd's OAuth callback).
	RedirectURIs []string
	// MessagesPerUser is how much mail each mailbox starts with.
	MessagesPerUser int
	// AutoConsent lets a login_hint skip the consent page.
	AutoConsent bool
}

// Demo is what a person needs to use the demo tenant.
type Demo struct {
	TenantID     string   `json:"tenantId"`
	TenantDomain string   `json:"tenantDomain"`
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret"`
	Users        []string `json:"users"`
	Admin        string   `json:"admin"`
	Shared       string   `json:"sharedMailbox"`
	Personal     string   `json:"personalAccount"`
}

// SeedDemo creates the demo tenant: Contoso with an app registration, three
// users (one an admin), a shared mailbox the first user may read and send
// as, a personal outlook.com account, and realistic mail in every mailbox.
func (s *Sim) SeedDemo(opts DemoOptions) (*Demo, error) {
	if opts.MessagesPerUser == 0 {
		opts.MessagesPerUser = 300
	}
	t, err := s.AddTenant(TenantSpec{Domain: "contoso.example", Name: "Contoso Ltd"})
	if err != nil {
		return nil, err
	}
	app, err := s.AddApp(AppSpec{
		Name: "outlookd demo", HomeTenant: t.ID, RedirectURIs: opts.RedirectURIs, AutoConsent: opts.AutoConsent,
		AppRoles: []string{"Mail.Read", "Mail.ReadWrite", "Mail.Send", "User.Read.All"},
	})
	if err != nil {
		return nil, err
	}
	d := &Demo{TenantID: t.ID, TenantDomain: t.Domain, ClientID: app.ClientID, ClientSecret: app.Secrets[0].Value}
	people := []UserSpec{
		{Tenant: t.Domain, UPN: "adele@contoso.example", DisplayName: "Adele Vance"},
		{Tenant: t.Domain, UPN: "alex@contoso.example", DisplayName: "Alex Wilber"},
		{Tenant: t.Domain, UPN: "megan@contoso.example", DisplayName: "Megan Bowen", Admin: true},
		{Tenant: t.Domain, UPN: "support@contoso.example", DisplayName: "Contoso Support", Shared: true},
		{Tenant: "consumers", UPN: "sam.demo@outlook.com", DisplayName: "Sam Demo"},
	}
	for i, spec := range people {
		if _, err := s.AddUser(spec); err != nil {
			return nil, err
		}
		if _, err := s.Generate(spec.UPN, GenerateSpec{Count: opts.MessagesPerUser, Days: 60, AttachmentShare: 0.05, ThreadShare: 0.3, Seed: uint64(i + 1)}); err != nil {
			return nil, fmt.Errorf("graphsim: demo mail for %s: %w", spec.UPN, err)
		}
		switch {
		case spec.Shared:
			d.Shared = spec.UPN
		case spec.Admin:
			d.Admin = spec.UPN
			d.Users = append(d.Users, spec.UPN)
		case spec.Tenant == "consumers":
			d.Personal = spec.UPN
		default:
			d.Users = append(d.Users, spec.UPN)
		}
	}
	if err := s.GrantMailboxRights(d.Shared, d.Users[0], RightRead, RightReadWrite, RightFullAccess, RightSendAs); err != nil {
		return nil, err
	}
	return d, nil
}
