package conformance_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/AzureAD/microsoft-authentication-library-for-go/apps/confidential"
	kiotaauth "github.com/microsoft/kiota-authentication-azure-go"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"

	"github.com/outlookd/outlookd/graphsim"
)

const graphDefault = "https://graph.microsoft.com/.default"

// newCertificate makes an RSA key and a self-signed certificate for it.
func newCertificate(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "conformance daemon"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// adminConsent grants the app's application permissions through the admin
// consent endpoint, as the tenant's admin would.
func (tt *tlsTenant) adminConsent(t *testing.T) {
	t.Helper()
	q := tt.authorize(t, tt.sim.URL()+"/"+tt.tenant.ID+"/v2.0/adminconsent?"+url.Values{
		"client_id": {tt.app.ClientID}, "redirect_uri": {tlsRedirectURI}, "scope": {graphDefault},
		"state": {"c"}, "login_hint": {tt.admin.UPN}}.Encode())
	if q.Get("error") != "" || q.Get("tenant") != tt.tenant.ID {
		t.Fatalf("admin consent: %v", q)
	}
}

// graphGet calls Graph with a bearer token and returns the status.
func (tt *tlsTenant) graphGet(t *testing.T, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", tt.sim.GraphURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := tt.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMSALConfidentialClient: MSAL for Go, with instance discovery off and
// an https authority on graphsim, gets app-only tokens with a secret and
// with a certificate, and redeems a code from a real sign-in
// (docs/graph.md#private-authorities-and-msal).
func TestMSALConfidentialClient(t *testing.T) {
	tt := startTLS(t)
	ctx := context.Background()
	cert, key := newCertificate(t)
	if _, err := tt.ctl.AddCertificate(ctx, tt.app.ClientID, cert.Raw, time.Time{}); err != nil {
		t.Fatal(err)
	}
	tt.adminConsent(t)
	authority := tt.sim.URL() + "/" + tt.tenant.ID
	secret, err := confidential.NewCredFromSecret(tt.app.Secrets[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := confidential.NewCredFromCert([]*x509.Certificate{cert}, key)
	if err != nil {
		t.Fatal(err)
	}
	newClient := func(cred confidential.Credential) confidential.Client {
		t.Helper()
		c, err := confidential.New(authority, tt.app.ClientID, cred, confidential.WithHTTPClient(tt.hc), confidential.WithInstanceDiscovery(false))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for name, cred := range map[string]confidential.Credential{"secret": secret, "certificate": withCert} {
		t.Run("client credentials with a "+name, func(t *testing.T) {
			res, err := newClient(cred).AcquireTokenByCredential(ctx, []string{graphDefault})
			if err != nil {
				t.Fatal(err)
			}
			if st := tt.graphGet(t, res.AccessToken, "/users"); st != 200 {
				t.Errorf("GET /users with the app-only token: %d", st)
			}
		})
	}
	t.Run("auth code with a certificate", func(t *testing.T) {
		client := newClient(withCert)
		scopes := []string{"Mail.Read", "User.Read"}
		authURL, err := client.AuthCodeURL(ctx, tt.app.ClientID, tlsRedirectURI, scopes, confidential.WithLoginHint(tt.ada.UPN))
		if err != nil {
			t.Fatal(err)
		}
		q := tt.authorize(t, authURL)
		if q.Get("code") == "" {
			t.Fatalf("sign-in: %v", q)
		}
		res, err := client.AcquireTokenByAuthCode(ctx, q.Get("code"), tlsRedirectURI, scopes)
		if err != nil {
			t.Fatal(err)
		}
		if res.Account.PreferredUsername != tt.ada.UPN || res.IDToken.TenantID != tt.tenant.ID {
			t.Errorf("account %+v, id token tid %q", res.Account, res.IDToken.TenantID)
		}
		if st := tt.graphGet(t, res.AccessToken, "/me/messages"); st != 200 {
			t.Errorf("GET /me/messages: %d", st)
		}
		silent, err := client.AcquireTokenSilent(ctx, scopes, confidential.WithSilentAccount(res.Account))
		if err != nil || silent.AccessToken == "" {
			t.Errorf("silent: %v", err)
		}
	})
}

// TestAzidentityWithGraphSDK: azidentity's secret and certificate
// credentials, pointed at graphsim over TLS, drive msgraph-sdk-go with
// app-only tokens after admin consent: list the users and read a user's
// mail (docs/graph.md#private-authorities-and-msal).
func TestAzidentityWithGraphSDK(t *testing.T) {
	tt := startTLS(t)
	ctx := context.Background()
	cert, key := newCertificate(t)
	if _, err := tt.ctl.AddCertificate(ctx, tt.app.ClientID, cert.Raw, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := tt.ctl.InjectMessages(ctx, tt.ada.UPN, graphsim.MessageSpec{Subject: "Quarterly numbers", From: graphsim.Recipient{Name: "Bob", Address: "bob@fabrikam.example"}}); err != nil {
		t.Fatal(err)
	}
	tt.adminConsent(t)
	opts := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: tt.sim.URL() + "/"}, Transport: tt.hc}
	secret, err := azidentity.NewClientSecretCredential(tt.tenant.ID, tt.app.ClientID, tt.app.Secrets[0].Value,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := azidentity.NewClientCertificateCredential(tt.tenant.ID, tt.app.ClientID, []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	for name, cred := range map[string]azcore.TokenCredential{"secret": secret, "certificate": withCert} {
		t.Run(name, func(t *testing.T) {
			// The auth provider sends tokens only to the hosts it is given.
			auth, err := kiotaauth.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{graphDefault}, []string{"127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: khttp.NewCustomTransportWithParentTransport(tt.hc.Transport,
				msgraphcore.GetDefaultMiddlewaresWithOptions(&msgraphcore.GraphClientOptions{})...)}
			adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
			if err != nil {
				t.Fatal(err)
			}
			adapter.SetBaseUrl(tt.sim.GraphURL())
			client := msgraphsdk.NewGraphServiceClient(adapter)
			users, err := client.Users().Get(ctx, nil)
			if err != nil {
				t.Fatalf("list users: %v", err)
			}
			if n := len(users.GetValue()); n != 2 {
				t.Errorf("%d users, want 2", n)
			}
			msgs, err := client.Users().ByUserId(tt.ada.UPN).Messages().Get(ctx, nil)
			if err != nil {
				t.Fatalf("ada's messages: %v", err)
			}
			if v := msgs.GetValue(); len(v) != 1 || *v[0].GetSubject() != "Quarterly numbers" {
				t.Errorf("messages %d", len(v))
			}
		})
	}
}
