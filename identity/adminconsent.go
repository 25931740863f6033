package identity

import (
	"errors"
	"net/url"
	"regexp"
	"strings"
)

// GraphResource is Microsoft Graph's resource URI in the global cloud;
// national clouds have their own (docs/graph.md#national-clouds).
const GraphResource = "https://graph.microsoft.com"

// AdminConsentScopes returns the delegated Graph permissions an
// administrator grants for the whole organisation so that its users can
// connect with the features: the scopes of Scopes as Graph resource URIs
// (https://graph.microsoft.com/Mail.Read), offline_access kept as is
// (docs/graph.md#admin-consent).
func (c Config) AdminConsentScopes(f Features) []string {
	resource := strings.TrimSuffix(c.GraphResource, "/")
	if resource == "" {
		resource = GraphResource
	}
	var out []string
	for _, s := range c.Scopes(f) {
		if s == "offline_access" {
			out = append(out, s)
			continue
		}
		out = append(out, resource+"/"+s)
	}
	return out
}

// AdminConsentURL is the link to the identity platform's v2 admin consent
// endpoint for a tenant (a tenant ID, a verified domain, or organizations),
// asking for scopes, with state echoed back to AdminRedirectURL
// (docs/graph.md#admin-consent).
func (c Config) AdminConsentURL(tenant string, scopes []string, state string) string {
	q := url.Values{
		"client_id":    {c.ClientID},
		"scope":        {strings.Join(scopes, " ")},
		"redirect_uri": {c.AdminRedirectURL},
		"state":        {state},
	}
	return strings.TrimSuffix(c.AuthorityURL, "/") + "/" + url.PathEscape(tenant) + "/v2.0/adminconsent?" + q.Encode()
}

var (
	tenantGUID   = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	tenantDomain = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$`)
)

// CheckAdminConsentTenant says whether a tenant can be given to the admin
// consent endpoint, and returns it in the form used from then on (lower
// case): a tenant ID, a domain name of the organisation, or
// "organizations" (the administrator's own tenant). "common" and
// "consumers" are refused, as Microsoft refuses them (AADSTS90130).
func CheckAdminConsentTenant(tenant string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(tenant))
	switch {
	case t == "":
		return "", errors.New("tenant is required: a tenant ID, a domain of the organisation, or \"organizations\"")
	case t == "common" || t == "consumers":
		return "", errors.New("admin consent needs an organisation: give its tenant ID, one of its domains, or \"organizations\", not \"" + t + "\"")
	case t == "organizations", tenantGUID.MatchString(t), len(t) <= 253 && tenantDomain.MatchString(t):
		return t, nil
	}
	return "", errors.New("tenant must be a tenant ID (a GUID), a domain of the organisation, or \"organizations\"")
}

// ClassifyAdminConsent maps the error of an admin consent redirect to a
// reason: the administrator's Cancel is consent_declined (v2: AADSTS65004;
// the older endpoint: permission_denied without a code), a signed-in user
// who is not an administrator admin_consent_required (AADSTS90093)
// (docs/graph.md#admin-consent).
func ClassifyAdminConsent(oauthErr, description string) Reason {
	if oauthErr == "permission_denied" {
		return ReasonConsentDeclined
	}
	r, _ := Classify(AtSignIn, oauthErr, description)
	return r
}
