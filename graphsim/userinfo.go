package graphsim

import (
	"net/http"
	"strings"
)

// handleUserInfo serves the OpenID Connect UserInfo endpoint, which Entra
// hosts on Graph at /oidc/userinfo (docs/graph.md#userinfo): GET or POST
// with a delegated Graph access token that carries openid; the names need
// profile, the address email.
func (s *Sim) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", newGUID())
	if c := r.Header.Get("client-request-id"); c != "" {
		w.Header().Set("client-request-id", c)
	}
	raw, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		raw = ""
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, err := s.validateAccessToken(strings.TrimSpace(raw))
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+s.URL()+`/common/oauth2/authorize", client_id="`+graphAppID+`"`)
		graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", err.Error())
		return
	}
	if !p.delegated() || !p.scopes["openid"] {
		graphError(w, r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	writeJSON(w, http.StatusOK, s.userInfo(p))
}

// userInfo is what UserInfo says of the token's user: the claims the ID
// token carries, with the same pairwise sub.
func (s *Sim) userInfo(p *principal) map[string]any {
	u := p.user
	out := map[string]any{"sub": pairwiseSub(u.ID, p.appID)}
	if p.scopes["profile"] {
		given, family, _ := strings.Cut(u.DisplayName, " ")
		out["name"] = u.DisplayName
		out["given_name"] = given
		out["family_name"] = family
		out["picture"] = s.GraphURL() + "/me/photo/$value"
	}
	if p.scopes["email"] {
		mail := u.Mail
		if mail == "" {
			mail = u.UPN
		}
		out["email"] = mail
	}
	return out
}
