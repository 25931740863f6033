package graphsim

import (
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// idpError is an identity-platform error (docs/graph.md#token-errors).
type idpError struct {
	status   int
	err      string // the OAuth error code
	code     int    // the AADSTS number
	message  string // text after "AADSTSnnn: "
	suberror string
	claims   string
}

func (e *idpError) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.err, e.code, e.message) }

func (e *idpError) description(now time.Time, trace, corr string) string {
	return fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
		e.code, e.message, trace, corr, now.Format("2006-01-02 15:04:05Z"))
}

// writeTokenError writes the token endpoint's JSON error body and headers.
func (s *Sim) writeTokenError(w http.ResponseWriter, r *http.Request, e *idpError) {
	now := s.clock.Now()
	trace, corr := newGUID(), r.Header.Get("client-request-id")
	if corr == "" {
		corr = newGUID()
	}
	body := map[string]any{
		"error":             e.err,
		"error_description": e.description(now, trace, corr),
		"error_codes":       []int{e.code},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          trace,
		"correlation_id":    corr,
		"error_uri":         fmt.Sprintf("%s/error?code=%d", s.URL(), e.code),
	}
	if e.suberror != "" {
		body["suberror"] = e.suberror
	}
	if e.claims != "" {
		body["claims"] = e.claims
	}
	status := e.status
	if status == 0 {
		status = http.StatusBadRequest
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	w.Header().Set("x-ms-request-id", trace)
	writeJSON(w, status, body)
	s.stats.tokenError(e.err, e.code)
}

// redirectError sends the browser back to the app with an OAuth error
// (docs/graph.md#authorization-code-flow-and-pkce), keeping state.
func (s *Sim) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *idpError, extra url.Values) {
	q := url.Values{}
	for k, v := range extra {
		q[k] = v
	}
	q.Set("error", e.err)
	// As on the token endpoint, the description ends with the trace and
	// correlation IDs and the time (docs/graph.md#admin-consent shows one).
	q.Set("error_description", e.description(s.clock.Now(), newGUID(), newGUID()))
	if e.suberror != "" {
		q.Set("error_subcode", e.suberror)
	}
	if state != "" {
		q.Set("state", state)
	}
	s.stats.authorizeError(e.err, e.code)
	http.Redirect(w, r, appendQuery(redirectURI, q), http.StatusFound)
}

func appendQuery(u string, q url.Values) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	existing := parsed.Query()
	for k, vs := range q {
		existing[k] = vs
	}
	parsed.RawQuery = existing.Encode()
	return parsed.String()
}

// Identity-platform errors, with Microsoft's texts (docs/graph.md#aadsts-codes).
func errInvalidClientSecret(appID string) *idpError {
	return &idpError{status: 401, err: "invalid_client", code: 7000215, message: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", appID)}
}

func errExpiredClientSecret(appID string) *idpError {
	return &idpError{status: 401, err: "invalid_client", code: 7000222, message: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", appID)}
}

func errMissingClientSecret() *idpError {
	return &idpError{status: 401, err: "invalid_client", code: 7000218, message: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
}

func errUnknownClient(appID, tenant string) *idpError {
	return &idpError{err: "unauthorized_client", code: 700016, message: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", appID, tenant)}
}

func errTenantNotFound(tenant string) *idpError {
	return &idpError{err: "invalid_tenant", code: 90002, message: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", tenant)}
}

func errConsentRequired(appID, appName string) *idpError {
	return &idpError{err: "invalid_grant", code: 65001, suberror: "consent_required", message: fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", appID, appName)}
}

func errMFARequired() *idpError {
	// The claims challenge asks for a fresh MFA (docs/graph.md#aadsts-codes, 50076).
	return &idpError{err: "invalid_grant", code: 50076, suberror: "basic_action",
		message: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'.",
		claims:  `{"access_token":{"capolids":{"essential":true,"values":["` + newGUID() + `"]}}}`}
}

func errRevoked(issued, validFrom time.Time, passwordChange bool) *idpError {
	msg := "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
	if passwordChange {
		msg += "The user might have changed or reset their password. "
	}
	msg += fmt.Sprintf("The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.",
		issued.Format("2006-01-02T15:04:05.0000000Z"), validFrom.Format("2006-01-02T15:04:05.0000000Z"))
	return &idpError{err: "invalid_grant", code: 50173, message: msg}
}

func errInactive(issued time.Time, inactivity time.Duration) *idpError {
	days := int(inactivity / (24 * time.Hour))
	return &idpError{err: "invalid_grant", code: 700082, suberror: "bad_token", message: fmt.Sprintf("The refresh token has expired due to inactivity. The token was issued on %s and was inactive for %d.00:00:00.", issued.Format("2006-01-02T15:04:05.0000000Z"), days)}
}

func errBlockedByCA() *idpError {
	return &idpError{err: "invalid_grant", code: 53003, message: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."}
}

func errUserDisabled() *idpError {
	return &idpError{err: "invalid_grant", code: 50057, message: "The user account is disabled."}
}

func errCodeRedeemed() *idpError {
	return &idpError{err: "invalid_grant", code: 54005, message: "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."}
}

func errCodeExpired() *idpError {
	return &idpError{err: "invalid_grant", code: 70008, message: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."}
}

func errBadVerifier() *idpError {
	return &idpError{err: "invalid_grant", code: 501481, message: "The Code_Verifier doesn't match the code_challenge supplied in the authorization request."}
}

func errMalformedGrant(what string) *idpError {
	return &idpError{err: "invalid_grant", code: 9002313, message: "Invalid request. Request is malformed or invalid. (" + what + ")"}
}

func errRedirectMismatch(appID string) *idpError {
	return &idpError{err: "invalid_request", code: 50011, message: fmt.Sprintf("The redirect URI specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.", appID)}
}

func errMissingParam(name string) *idpError {
	return &idpError{err: "invalid_request", code: 900144, message: fmt.Sprintf("The request body must contain the following parameter: '%s'.", name)}
}

func errInvalidScope(scope string) *idpError {
	return &idpError{err: "invalid_scope", code: 70011, message: fmt.Sprintf("The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope)}
}
