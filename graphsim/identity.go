package graphsim

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// authCode is an issued authorization code.
type authCode struct {
	clientID    string
	redirectURI string
	user        *User
	scopes      []string // granted Graph scopes
	oidc        map[string]bool
	asked       map[string]string // how the authorize request wrote each scope
	challenge   string
	method      string
	nonce       string
	expires     time.Time
	redeemed    bool
}

// rtFamily is the chain of refresh tokens one sign-in produced; rotation
// adds tokens to it, revocation kills all of them.
type rtFamily struct {
	clientID string
	user     *User
	scopes   []string
	oidc     map[string]bool   // the OIDC scopes of the sign-in
	asked    map[string]string // how the sign-in wrote its scopes
	authTime time.Time
}

// refreshGrant is one refresh token of a family.
type refreshGrant struct {
	family   *rtFamily
	issued   time.Time
	lastUsed time.Time
}

// tenantAllows says whether a user may sign in through the {tenant} segment.
func (s *Sim) tenantAllows(seg string, u *User) *idpError {
	personal := s.tenants[u.TenantID].Personal
	switch strings.ToLower(seg) {
	case "common":
		return nil
	case "organizations":
		if personal {
			return &idpError{err: "access_denied", code: 90072, message: "User account '" + u.UPN + "' from identity provider 'live.com' does not exist in tenant 'organizations' and cannot access the application. The account needs to be added as an external user in the tenant first."}
		}
		return nil
	case "consumers":
		if !personal {
			return &idpError{err: "access_denied", code: 50020, message: "User account '" + u.UPN + "' is a work or school account and cannot sign in through the consumers endpoint."}
		}
		return nil
	}
	t := s.tenantFor(seg)
	if t == nil || t.ID != u.TenantID {
		return &idpError{err: "access_denied", code: 50020, message: "User account '" + u.UPN + "' from identity provider '" + s.tenants[u.TenantID].Domain + "' does not exist in tenant '" + seg + "' and cannot access the application. This account needs to be added as an external user in the tenant first."}
	}
	return nil
}

// grantedScopes is what a user (or the tenant's admin, for everyone) has
// consented to for an app.
func (s *Sim) grantedScopes(app *App, u *User) map[string]bool {
	out := map[string]bool{}
	for sc := range u.consents[app.ClientID] {
		out[sc] = true
	}
	if t := s.tenants[u.TenantID]; t != nil {
		for sc := range t.adminGrants[app.ClientID] {
			out[sc] = true
		}
	}
	return out
}

// authRequest is a parsed /authorize request.
type authRequest struct {
	tenant       string
	app          *App
	redirectURI  string
	state        string
	scopes       scopeRequest
	prompt       string
	loginHint    string
	responseMode string
	challenge    string
	method       string
	nonce        string
	raw          url.Values
}

// parseAuthorize validates what can only be shown as an error page (an
// unknown client or redirect URI: there is nowhere safe to redirect to);
// the rest becomes an error redirect.
func (s *Sim) parseAuthorize(r *http.Request, q url.Values) (*authRequest, *idpError, bool) {
	seg := r.PathValue("tenant")
	if !isAliasTenant(seg) && s.tenantFor(seg) == nil {
		return nil, errTenantNotFound(seg), false
	}
	ar := &authRequest{
		tenant:       seg,
		redirectURI:  q.Get("redirect_uri"),
		state:        q.Get("state"),
		scopes:       parseScopes(q.Get("scope")),
		prompt:       q.Get("prompt"),
		loginHint:    q.Get("login_hint"),
		responseMode: q.Get("response_mode"),
		challenge:    q.Get("code_challenge"),
		method:       q.Get("code_challenge_method"),
		nonce:        q.Get("nonce"),
		raw:          q,
	}
	ar.app = s.apps[q.Get("client_id")]
	if ar.app == nil {
		return nil, errUnknownClient(q.Get("client_id"), seg), false
	}
	if !slices.Contains(ar.app.RedirectURIs, ar.redirectURI) {
		return nil, errRedirectMismatch(ar.app.ClientID), false
	}
	switch {
	case q.Get("response_type") != "code":
		return ar, &idpError{err: "unsupported_response_type", code: 700054, message: "response_type '" + q.Get("response_type") + "' is not supported for the application; use 'code'."}, true
	case q.Get("scope") == "":
		return ar, errMissingParam("scope"), true
	case len(ar.scopes.unknown) > 0:
		return ar, errInvalidScope(strings.Join(ar.scopes.unknown, " ")), true
	}
	if ar.challenge != "" {
		if ar.method == "" {
			ar.method = "plain" // docs/graph.md#authorization-code-flow-and-pkce: no method means plain
		}
		if ar.method != "S256" && ar.method != "plain" {
			return ar, &idpError{err: "invalid_request", code: 50148, message: "The code_challenge_method '" + ar.method + "' is not supported; use S256 or plain."}, true
		}
		if n := len(ar.challenge); n < 43 || n > 128 {
			return ar, &idpError{err: "invalid_request", code: 501491, message: "Invalid size of Code_Challenge parameter."}, true
		}
	}
	return ar, nil, true
}

func isAliasTenant(seg string) bool {
	switch strings.ToLower(seg) {
	case "common", "organizations", "consumers":
		return true
	}
	return false
}

// decide checks whether user u may get a code for ar now, and which scopes
// that grants. consentGiven means the user just accepted the consent page.
func (s *Sim) decide(ar *authRequest, u *User, consentGiven bool) ([]string, *idpError) {
	if u.Shared {
		return nil, &idpError{err: "access_denied", code: 50034, message: "The user account " + u.UPN + " does not exist in the directory or cannot sign in. To sign into this application, the account must be added to the directory."}
	}
	if e := s.tenantAllows(ar.tenant, u); e != nil {
		return nil, e
	}
	if u.AccountDisabled {
		return nil, &idpError{err: "access_denied", code: 50057, message: "The user account is disabled."}
	}
	if u.BlockedByCA {
		return nil, &idpError{err: "access_denied", code: 53003, message: "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."}
	}
	if ar.prompt == "none" && u.RequireMFA {
		return nil, &idpError{err: "interaction_required", code: 50076, message: "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000003-0000-0000-c000-000000000000'."}
	}
	granted := s.grantedScopes(ar.app, u)
	want := ar.scopes.graph
	if ar.scopes.dotDefault {
		want = keys(granted)
		if len(want) == 0 {
			return nil, &idpError{err: "consent_required", code: 65001, message: "The user or administrator has not consented to use the application with ID '" + ar.app.ClientID + "' named '" + ar.app.Name + "'. Send an interactive authorization request for this user and resource."}
		}
	}
	var missing []string
	for _, sc := range want {
		if !granted[sc] {
			missing = append(missing, sc)
		}
	}
	if len(missing) == 0 && ar.prompt != "consent" {
		return want, nil
	}
	tenant := s.tenants[u.TenantID]
	needsAdmin := !tenant.UserConsent
	for _, sc := range missing {
		if delegatedPermissions[sc].adminOnly {
			needsAdmin = true
		}
	}
	switch {
	case needsAdmin && len(missing) > 0:
		return nil, &idpError{err: "consent_required", code: 90094, message: "Admin consent is required for the permissions requested by this application. An administrator of '" + tenant.Name + "' must grant consent to the application '" + ar.app.Name + "' before users can sign in."}
	case ar.prompt == "none":
		return nil, &idpError{err: "consent_required", code: 65001, message: "The user or administrator has not consented to use the application with ID '" + ar.app.ClientID + "' named '" + ar.app.Name + "'. Send an interactive authorization request for this user and resource."}
	case u.DeclinesConsent || !consentGiven:
		return nil, errDeclined()
	}
	if u.consents == nil {
		u.consents = map[string]map[string]bool{}
	}
	if u.consents[ar.app.ClientID] == nil {
		u.consents[ar.app.ClientID] = map[string]bool{}
	}
	for _, sc := range want {
		u.consents[ar.app.ClientID][sc] = true
	}
	return want, nil
}

func errDeclined() *idpError {
	return &idpError{err: "access_denied", code: 65004, suberror: "cancel", message: "User declined to consent to access the app."}
}

// issueCode redirects back to the app with a fresh authorization code.
func (s *Sim) issueCode(w http.ResponseWriter, r *http.Request, ar *authRequest, u *User, scopes []string) {
	code := "1.A" + randomToken(48)
	s.remember(code)
	s.codes[code] = &authCode{
		clientID:    ar.app.ClientID,
		redirectURI: ar.redirectURI,
		user:        u,
		scopes:      scopes,
		oidc:        ar.scopes.oidc,
		asked:       ar.scopes.asked,
		challenge:   ar.challenge,
		method:      ar.method,
		nonce:       ar.nonce,
		expires:     s.clock.Now().Add(s.opts.AuthCodeLifetime),
	}
	q := url.Values{"code": {code}, "session_state": {newGUID()}}
	if ar.state != "" {
		q.Set("state", ar.state)
	}
	s.stats.codeIssued()
	switch ar.responseMode {
	case "form_post":
		writeFormPost(w, ar.redirectURI, q)
	case "fragment":
		http.Redirect(w, r, ar.redirectURI+"#"+q.Encode(), http.StatusFound)
	default:
		http.Redirect(w, r, appendQuery(ar.redirectURI, q), http.StatusFound)
	}
}

// userByHint finds a user by UPN or mail.
func (s *Sim) userByHint(hint string) *User {
	return s.userByName[strings.ToLower(strings.TrimSpace(hint))]
}

// handleAuthorize serves GET (and POST from the consent page) of
// /{tenant}/oauth2/v2.0/authorize.
func (s *Sim) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	q := r.Form
	ar, perr, redirectable := s.parseAuthorize(r, q)
	if perr != nil && !redirectable {
		s.stats.authorizeError(perr.err, perr.code)
		s.renderError(w, r, http.StatusBadRequest, perr)
		return
	}
	if perr != nil {
		s.redirectError(w, r, ar.redirectURI, ar.state, perr, nil)
		return
	}

	// The consent page posts back the chosen account and the decision.
	if r.Method == http.MethodPost && q.Get("sim_user") != "" {
		u := s.users[q.Get("sim_user")]
		if u == nil {
			s.renderError(w, r, http.StatusBadRequest, &idpError{err: "invalid_request", code: 50034, message: "The selected account does not exist."})
			return
		}
		if q.Get("sim_decision") != "accept" {
			s.redirectError(w, r, ar.redirectURI, ar.state, errDeclined(), nil)
			return
		}
		s.complete(w, r, ar, u, true)
		return
	}

	var hinted *User
	if ar.loginHint != "" {
		hinted = s.userByHint(ar.loginHint)
	}
	if ar.prompt == "none" {
		if hinted == nil {
			s.redirectError(w, r, ar.redirectURI, ar.state, &idpError{err: "login_required", code: 50058, message: "A silent sign-in request was sent but no user is signed in."}, nil)
			return
		}
		s.complete(w, r, ar, hinted, false)
		return
	}
	// The automatic path for tests: a known login_hint and an app registered
	// with the simulator-only auto-consent switch.
	if hinted != nil && ar.app.AutoConsent && ar.prompt != "select_account" && ar.prompt != "login" {
		s.complete(w, r, ar, hinted, true)
		return
	}
	s.renderConsent(w, r, ar, hinted)
}

// complete decides a sign-in of u and redirects back with a code or an error.
func (s *Sim) complete(w http.ResponseWriter, r *http.Request, ar *authRequest, u *User, consentGiven bool) {
	scopes, e := s.decide(ar, u, consentGiven)
	if e != nil {
		s.redirectError(w, r, ar.redirectURI, ar.state, e, nil)
		return
	}
	s.issueCode(w, r, ar, u, scopes)
}

// clientAuth authenticates the client of a token request: HTTP Basic with
// URL-encoded parts, or client_id/client_secret in the form (docs/graph.md#authorization-code-flow-and-pkce:
// x/oauth2 tries Basic first and then the form).
func (s *Sim) clientAuth(r *http.Request, tenant string) (*App, *idpError) {
	if r.PostForm.Has("client_assertion") || r.PostForm.Has("client_assertion_type") {
		return s.assertionAuth(r, tenant)
	}
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id == "" {
		return nil, errMissingParam("client_id")
	}
	app := s.apps[id]
	if app == nil {
		return nil, errUnknownClient(id, tenant)
	}
	if secret == "" {
		return nil, errMissingClientSecret()
	}
	now := s.clock.Now()
	matchedExpired := false
	for _, sec := range app.Secrets {
		if subtle.ConstantTimeCompare([]byte(sec.Value), []byte(secret)) == 1 {
			if !sec.Expires.IsZero() && now.After(sec.Expires) {
				matchedExpired = true
				continue
			}
			return app, nil
		}
	}
	if matchedExpired {
		return nil, errExpiredClientSecret(app.ClientID)
	}
	return nil, errInvalidClientSecret(app.ClientID)
}

// handleToken serves POST /{tenant}/oauth2/v2.0/token.
func (s *Sim) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeTokenError(w, r, &idpError{err: "invalid_request", code: 900144, message: "The request body must be application/x-www-form-urlencoded."})
		return
	}
	seg := r.PathValue("tenant")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !isAliasTenant(seg) && s.tenantFor(seg) == nil {
		s.writeTokenError(w, r, errTenantNotFound(seg))
		return
	}
	app, e := s.clientAuth(r, seg)
	if e != nil {
		s.writeTokenError(w, r, e)
		return
	}
	// MSAL and Kiota send claims (xms_cc) on every grant; it is accepted and
	// ignored (docs/graph.md#claims-challenges).
	var resp map[string]any
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "authorization_code":
		resp, e = s.redeemCode(r, app, seg)
	case "refresh_token":
		resp, e = s.redeemRefresh(r, app, seg)
	case "client_credentials":
		resp, e = s.clientCredentials(r, app, seg)
	case "":
		e = errMissingParam("grant_type")
	default:
		e = &idpError{err: "unsupported_grant_type", code: 70003, message: "The app requested an unsupported grant type '" + gt + "'."}
	}
	if e != nil {
		s.writeTokenError(w, r, e)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	s.stats.tokenIssued(r.PostForm.Get("grant_type"))
	writeJSON(w, http.StatusOK, resp)
}

func (s *Sim) redeemCode(r *http.Request, app *App, seg string) (map[string]any, *idpError) {
	f := r.PostForm
	raw := f.Get("code")
	if raw == "" {
		return nil, errMissingParam("code")
	}
	c := s.codes[raw]
	now := s.clock.Now()
	switch {
	case c == nil || c.clientID != app.ClientID:
		return nil, errMalformedGrant("unknown authorization code")
	case c.redeemed:
		return nil, errCodeRedeemed()
	case now.After(c.expires):
		return nil, errCodeExpired()
	case f.Get("redirect_uri") != c.redirectURI:
		return nil, &idpError{err: "invalid_grant", code: 500112, message: "The reply address '" + f.Get("redirect_uri") + "' does not match the reply address '" + c.redirectURI + "' provided when requesting Authorization code."}
	}
	if e := s.tenantAllows(seg, c.user); e != nil {
		return nil, &idpError{err: "invalid_grant", code: 700005, message: "Provided Authorization Code is intended to use against other tenant, thus rejected."}
	}
	if c.challenge != "" {
		v := f.Get("code_verifier")
		if v == "" {
			return nil, &idpError{err: "invalid_grant", code: 501481, message: "The Code_Verifier doesn't match the code_challenge supplied in the authorization request."}
		}
		s.remember(v)
		if !pkceMatches(c.challenge, c.method, v) {
			return nil, errBadVerifier()
		}
	}
	c.redeemed = true
	scopes := c.scopes
	var sr scopeRequest
	if req := f.Get("scope"); req != "" {
		sr = parseScopes(req)
		if len(sr.graph) > 0 {
			for _, sc := range sr.graph {
				if !slices.Contains(c.scopes, sc) {
					return nil, errConsentRequired(app.ClientID, app.Name)
				}
			}
			scopes = sr.graph
		}
	}
	// The OIDC scopes of the redemption count beside the sign-in's: MSAL's
	// AuthCodeURL asks for the resource scopes only and adds "openid
	// offline_access profile" when it redeems (docs/graph.md#token-responses).
	oidc := map[string]bool{}
	for _, set := range []map[string]bool{c.oidc, sr.oidc} {
		for k, v := range set {
			oidc[k] = oidc[k] || v
		}
	}
	fam := &rtFamily{clientID: app.ClientID, user: c.user, scopes: c.scopes, oidc: oidc, asked: c.asked, authTime: now}
	return s.userTokens(app, c.user, scopes, oidc, fam, c.nonce, sr.asked, now)
}

// pkceMatches checks a verifier against the challenge (RFC 7636).
func pkceMatches(challenge, method, verifier string) bool {
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// tokenOIDCScopes are the OIDC scopes a Graph access token lists in scp
// beside the Graph ones: those of the sign-in and of this request. The
// UserInfo endpoint reads them (docs/graph.md#userinfo).
func tokenOIDCScopes(sets ...map[string]bool) []string {
	var out []string
	for _, sc := range []string{"openid", "profile", "email"} {
		for _, set := range sets {
			if set[sc] {
				out = append(out, sc)
				break
			}
		}
	}
	return out
}

// userTokens builds a user-flow token response.
func (s *Sim) userTokens(app *App, u *User, scopes []string, oidc map[string]bool, fam *rtFamily, nonce string, asked map[string]string, now time.Time) (map[string]any, *idpError) {
	at, life, err := s.mintAccessToken(app, u.TenantID, u, append(slices.Clone(scopes), tokenOIDCScopes(oidc, fam.oidc)...), nil, now)
	if err != nil {
		return nil, &idpError{status: 500, err: "server_error", code: 50000, message: "There was an error issuing a token."}
	}
	s.remember(at)
	secs := int(life / time.Second)
	resp := map[string]any{
		"token_type":     "Bearer",
		"scope":          responseScopes(scopes, fam.asked, asked),
		"expires_in":     secs, // an integer: MSAL rejects fractions (docs/graph.md#token-responses)
		"ext_expires_in": secs,
		"access_token":   at,
		"client_info":    clientInfo(u),
	}
	if oidc["offline_access"] {
		rt := "1.AQ" + randomToken(96)
		s.remember(rt)
		s.refresh[rt] = &refreshGrant{family: fam, issued: now, lastUsed: now}
		resp["refresh_token"] = rt
	}
	if oidc["openid"] {
		idt, err := s.mintIDToken(app, u, nonce, now)
		if err == nil {
			s.remember(idt)
			resp["id_token"] = idt
		}
	}
	return resp, nil
}

func (s *Sim) redeemRefresh(r *http.Request, app *App, seg string) (map[string]any, *idpError) {
	f := r.PostForm
	raw := f.Get("refresh_token")
	if raw == "" {
		return nil, errMissingParam("refresh_token")
	}
	g := s.refresh[raw]
	now := s.clock.Now()
	if g == nil || g.family.clientID != app.ClientID {
		return nil, errMalformedGrant("the refresh token is not valid for this client")
	}
	u := g.family.user
	if e := s.tenantAllows(seg, u); e != nil {
		return nil, &idpError{err: "invalid_grant", code: 700005, message: "Provided refresh token is intended to use against other tenant, thus rejected."}
	}
	// Revocation applies to every token issued before it (docs/graph.md#refresh-tokens).
	if !u.revokedAt.IsZero() && !g.family.authTime.After(u.revokedAt) {
		switch u.revokeReason {
		case RevokeMFARequired:
			return nil, errMFARequired()
		case RevokeConsentRevoked:
			return nil, errConsentRequired(app.ClientID, app.Name)
		case RevokeConditionalAccess:
			return nil, errBlockedByCA()
		case RevokeDisabled:
			return nil, errUserDisabled()
		case RevokePasswordChanged:
			return nil, errRevoked(g.family.authTime, u.revokedAt, true)
		default:
			return nil, errRevoked(g.family.authTime, u.revokedAt, false)
		}
	}
	if now.Sub(g.lastUsed) > s.opts.RefreshTokenInactivity {
		return nil, errInactive(g.issued, s.opts.RefreshTokenInactivity)
	}
	granted := s.grantedScopes(app, u)
	scopes := g.family.scopes
	sr := parseScopes(f.Get("scope"))
	if len(sr.graph) > 0 {
		scopes = sr.graph
	}
	for _, sc := range scopes {
		if !granted[sc] {
			return nil, errConsentRequired(app.ClientID, app.Name)
		}
	}
	g.lastUsed = now
	oidc := map[string]bool{"offline_access": true}
	for k := range sr.oidc {
		oidc[k] = true
	}
	// A new refresh token on every use; the old one stays valid.
	return s.userTokens(app, u, scopes, oidc, g.family, "", sr.asked, now)
}

func (s *Sim) clientCredentials(r *http.Request, app *App, seg string) (map[string]any, *idpError) {
	if isAliasTenant(seg) {
		return nil, &idpError{err: "invalid_request", code: 9001023, message: "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."}
	}
	tenant := s.tenantFor(seg)
	if e := clientCredentialsScope(r.PostForm.Get("scope")); e != nil {
		return nil, e
	}
	if tenant.Personal {
		return nil, errUnknownClient(app.ClientID, seg)
	}
	now := s.clock.Now()
	// Without admin consent the token simply has no roles (docs/graph.md#client-credentials).
	roles := keys(tenant.appRoleGrants[app.ClientID])
	at, life, err := s.mintAccessToken(app, tenant.ID, nil, nil, roles, now)
	if err != nil {
		return nil, &idpError{status: 500, err: "server_error", code: 50000, message: "There was an error issuing a token."}
	}
	s.remember(at)
	secs := int(life / time.Second)
	return map[string]any{"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs, "access_token": at}, nil
}

// clientCredentialsScope checks the scope of a client credentials request
// (docs/graph.md#client-credentials): exactly one {resource}/.default, with
// any OIDC scopes beside it (MSAL and azidentity always add "openid
// offline_access profile"); they change nothing in the response.
func clientCredentialsScope(raw string) *idpError {
	sc := strings.Join(strings.Fields(raw), " ")
	var resources []string
	bare := false
	for s := range strings.FieldsSeq(raw) {
		switch {
		case oidcScopes[strings.ToLower(s)]:
		case strings.HasSuffix(s, "/.default"):
			if r := strings.ToLower(strings.TrimSuffix(s, "/.default")); !slices.Contains(resources, r) {
				resources = append(resources, r)
			}
		default:
			bare = true
		}
	}
	switch {
	case bare || len(resources) == 0:
		return &idpError{err: "invalid_scope", code: 1002012, message: "The provided value for scope " + sc + " is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."}
	case len(resources) > 1:
		return &idpError{err: "invalid_scope", code: 28000, message: "Provided value for the input parameter scope is not valid because it contains more than one resource. Scope " + sc + " is not valid."}
	}
	return nil
}

// handleDiscovery serves the OpenID configuration of a tenant (docs/graph.md#private-authorities-and-msal:
// the issuer must be on the simulator's own host).
func (s *Sim) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	seg := r.PathValue("tenant")
	s.mu.RLock()
	defer s.mu.RUnlock()
	tid := "{tenantid}"
	if !isAliasTenant(seg) {
		t := s.tenantFor(seg)
		if t == nil {
			s.writeTokenError(w, r, errTenantNotFound(seg))
			return
		}
		tid = t.ID
	} else if strings.EqualFold(seg, "consumers") {
		tid = ConsumerTenantID
	}
	base := s.URL()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base + "/" + tid + "/v2.0",
		"userinfo_endpoint":                     base + "/oidc/userinfo", // Entra names Graph's (docs/graph.md#userinfo)
		"authorization_endpoint":                base + "/" + seg + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/" + seg + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/" + seg + "/discovery/v2.0/keys",
		"end_session_endpoint":                  base + "/" + seg + "/oauth2/v2.0/logout",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"claims_supported":                      []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"},
		"code_challenge_methods_supported":      []string{"plain", "S256"},
		"tenant_region_scope":                   "NA",
		"cloud_instance_name":                   strings.TrimPrefix(strings.TrimPrefix(base, "https://"), "http://"),
	})
}

// handleKeys serves the signing keys (docs/graph.md#signing-keys); each
// names the issuer of the tenant segment it was fetched for.
func (s *Sim) handleKeys(w http.ResponseWriter, r *http.Request) {
	seg := r.PathValue("tenant")
	tid := "{tenantid}"
	s.mu.RLock()
	if t := s.tenantFor(seg); t != nil {
		tid = t.ID
	} else if strings.EqualFold(seg, "consumers") {
		tid = ConsumerTenantID
	}
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, map[string]any{"keys": []any{s.jwk(s.URL() + "/" + tid + "/v2.0")}})
}

// handleAdminConsent serves /{tenant}/v2.0/adminconsent (and the older
// /{tenant}/adminconsent): an administrator grants the app's permissions for
// the whole tenant (docs/graph.md#admin-consent).
func (s *Sim) handleAdminConsent(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	q := r.Form
	seg := r.PathValue("tenant")
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.apps[q.Get("client_id")]
	if app == nil {
		s.renderError(w, r, http.StatusBadRequest, errUnknownClient(q.Get("client_id"), seg))
		return
	}
	redirect := q.Get("redirect_uri")
	if !slices.Contains(app.RedirectURIs, redirect) {
		s.renderError(w, r, http.StatusBadRequest, errRedirectMismatch(app.ClientID))
		return
	}
	state := q.Get("state")
	v2 := strings.Contains(r.URL.Path, "/v2.0/")
	// An error redirect carries error, error_description and state; the v2
	// endpoint adds admin_consent=True, the older one does not; neither has
	// tenant or scope, which only success carries (docs/graph.md#admin-consent).
	fail := func(e *idpError) {
		var extra url.Values
		if v2 {
			extra = url.Values{"admin_consent": {"True"}}
		}
		s.redirectError(w, r, redirect, state, e, extra)
	}
	if strings.EqualFold(seg, "common") || strings.EqualFold(seg, "consumers") {
		fail(&idpError{err: "invalid_request", code: 90130, message: "Application admin consent is not supported on the '" + seg + "' endpoint; use the tenant ID or 'organizations'."})
		return
	}
	scope := q.Get("scope")
	if scope == "" {
		scope = GraphResource + "/.default"
	}
	sr := parseScopes(scope)
	var admin *User
	switch {
	case r.Method == http.MethodPost && q.Get("sim_user") != "":
		admin = s.users[q.Get("sim_user")]
		if q.Get("sim_decision") != "accept" {
			s.declineAdminConsent(w, r, redirect, state, v2)
			return
		}
	case q.Get("login_hint") != "" && app.AutoConsent:
		admin = s.userByHint(q.Get("login_hint"))
	default:
		s.renderAdminConsent(w, r.URL.Path, seg, app, sr, q)
		return
	}
	if admin == nil || !admin.Admin {
		fail(&idpError{err: "access_denied", code: 90093, message: "Graph returned Forbidden (403): the signed-in user does not have permission to grant admin consent."})
		return
	}
	if !isAliasTenant(seg) {
		if t := s.tenantFor(seg); t == nil || t.ID != admin.TenantID {
			fail(errTenantNotFound(seg))
			return
		}
	}
	t := s.tenants[admin.TenantID]
	if t.adminGrants[app.ClientID] == nil {
		t.adminGrants[app.ClientID] = map[string]bool{}
	}
	if t.appRoleGrants[app.ClientID] == nil {
		t.appRoleGrants[app.ClientID] = map[string]bool{}
	}
	if sr.dotDefault {
		for _, role := range app.AppRoles {
			t.appRoleGrants[app.ClientID][role] = true
		}
	}
	for _, sc := range sr.graph {
		t.adminGrants[app.ClientID][sc] = true
	}
	ok := url.Values{"admin_consent": {"True"}, "tenant": {t.ID}}
	if v2 {
		ok.Set("scope", scope)
	}
	if state != "" {
		ok.Set("state", state)
	}
	s.stats.adminConsent()
	http.Redirect(w, r, appendQuery(redirect, ok), http.StatusFound)
}

// declineAdminConsent answers an administrator's Cancel: on v2
// consent_required AADSTS65004 with admin_consent=True, on the older
// endpoint permission_denied "The admin canceled the request"
// (docs/graph.md#admin-consent).
func (s *Sim) declineAdminConsent(w http.ResponseWriter, r *http.Request, redirect, state string, v2 bool) {
	if v2 {
		s.redirectError(w, r, redirect, state, &idpError{err: "consent_required", code: 65004, message: "The resource owner or authorization server denied the request."}, url.Values{"admin_consent": {"True"}})
		return
	}
	q := url.Values{"error": {"permission_denied"}, "error_description": {"The admin canceled the request"}}
	if state != "" {
		q.Set("state", state)
	}
	s.stats.authorizeError("permission_denied", 65004)
	http.Redirect(w, r, appendQuery(redirect, q), http.StatusFound)
}
