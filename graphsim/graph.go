package graphsim

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// node is one step of a Graph path: a collection or entity name, with the
// key that follows it ("messages/{id}" or "mailFolders('inbox')").
type node struct {
	name  string // lower case
	key   string
	keyed bool
}

// keyedCollections take a key as the next segment.
var keyedCollections = map[string]bool{"users": true, "groups": true, "mailfolders": true, "childfolders": true, "messages": true, "attachments": true, "subscriptions": true}

// parsePath turns /v1.0/... into nodes. Segments are URL-decoded (the SDK
// escapes '=' in IDs, docs/graph.md#paths-and-ids); "name('key')" and "name/key" are both
// accepted, as are delta(), microsoft.graph.delta and their variants.
func parsePath(escaped string) ([]node, bool) {
	rest := strings.TrimPrefix(escaped, "/v1.0")
	rest = strings.Trim(rest, "/")
	if rest == "" {
		return nil, true
	}
	raw := strings.Split(rest, "/")
	var out []node
	for i := 0; i < len(raw); i++ {
		seg, err := url.PathUnescape(raw[i])
		if err != nil {
			return nil, false
		}
		n := node{name: strings.ToLower(seg)}
		if open := strings.IndexByte(seg, '('); open > 0 && strings.HasSuffix(seg, ")") {
			n.name = strings.ToLower(seg[:open])
			inner := seg[open+1 : len(seg)-1]
			if len(inner) >= 2 && inner[0] == '\'' && inner[len(inner)-1] == '\'' {
				inner = strings.ReplaceAll(inner[1:len(inner)-1], "''", "'")
			}
			if inner != "" {
				n.key, n.keyed = inner, true
			}
		}
		n.name = strings.TrimPrefix(n.name, "microsoft.graph.")
		if keyedCollections[n.name] && !n.keyed && i+1 < len(raw) {
			next, err := url.PathUnescape(raw[i+1])
			if err != nil {
				return nil, false
			}
			if !isAction(next) {
				n.key, n.keyed = next, true
				i++
			}
		}
		out = append(out, n)
	}
	return out, true
}

func isAction(seg string) bool {
	s := strings.ToLower(seg)
	s = strings.TrimSuffix(s, "()")
	s = strings.TrimPrefix(s, "microsoft.graph.")
	switch s {
	case "delta", "$value", "$count", "move", "send", "copy", "reauthorize", "createuploadsession":
		return true
	}
	return false
}

// identityFaults applies the fault rule of an identity platform endpoint
// class ("token", "authorize") before its handler.
func (s *Sim) identityFaults(class string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		answered, latency := s.injectFault(w, r, class)
		if answered {
			return
		}
		sleep(r, latency)
		h(w, r)
	}
}

// routes builds the top-level handler.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleKeys)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", s.identityFaults("authorize", s.handleAuthorize))
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/authorize", s.identityFaults("authorize", s.handleAuthorize))
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.identityFaults("token", s.handleToken))
	mux.HandleFunc("GET /{tenant}/v2.0/adminconsent", s.handleAdminConsent)
	mux.HandleFunc("POST /{tenant}/v2.0/adminconsent", s.handleAdminConsent)
	mux.HandleFunc("GET /{tenant}/adminconsent", s.handleAdminConsent)
	mux.HandleFunc("POST /{tenant}/adminconsent", s.handleAdminConsent)
	mux.HandleFunc("GET /oidc/userinfo", s.handleUserInfo)
	mux.HandleFunc("POST /oidc/userinfo", s.handleUserInfo)
	control := s.controlHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1.0/"):
			s.serveGraph(w, r)
		case strings.HasPrefix(r.URL.Path, uploadsPrefix):
			s.serveUpload(w, r)
		case strings.HasPrefix(r.URL.Path, "/_sim/"):
			control.ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// graphRequest is one Graph call being served.
type graphRequest struct {
	w      http.ResponseWriter
	r      *http.Request
	p      *principal
	nodes  []node
	target *User  // the mailbox or user addressed
	prefix string // "me" or "users/{key}" as the client wrote it
	class  string // endpoint class for counters, faults and throttling
	// latency is injected delay, served while holding the throttle slot.
	latency time.Duration
}

// statusWriter remembers the status for the counters.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (s *Sim) serveGraph(rw http.ResponseWriter, r *http.Request) {
	reqID := newGUID()
	rw.Header().Set("request-id", reqID)
	if c := r.Header.Get("client-request-id"); c != "" {
		rw.Header().Set("client-request-id", c)
	}
	rw.Header().Set("x-ms-ags-diagnostic", `{"ServerInfo":{"DataCenter":"Simulated","Slice":"E","Ring":"1","ScaleUnit":"000","RoleInstance":"graphsim"}}`)
	sw := &statusWriter{ResponseWriter: rw}
	g := &graphRequest{w: rw, r: r, class: "other"}
	defer func() {
		switch sw.status {
		case -1: // answered by fault injection, counted there
		case 0:
			s.stats.request(g.class, http.StatusOK)
		default:
			s.stats.request(g.class, sw.status)
		}
	}()
	g.w = sw
	// The SDK gzips every request body (docs/graph.md#request-pipeline).
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			errBadRequest(g.w, r, "The request body is not valid gzip.")
			return
		}
		r.Body = io.NopCloser(zr)
		r.Header.Del("Content-Encoding")
	}
	nodes, ok := parsePath(r.URL.EscapedPath())
	if !ok || len(nodes) == 0 {
		graphError(g.w, r, http.StatusBadRequest, "BadRequest", "Invalid request URL.")
		return
	}
	g.nodes = nodes
	g.class = classify(nodes)

	authz := r.Header.Get("Authorization")
	raw, found := strings.CutPrefix(authz, "Bearer ")
	if !found {
		raw = ""
	}
	s.mu.RLock()
	p, err := s.validateAccessToken(strings.TrimSpace(raw))
	s.mu.RUnlock()
	if err != nil {
		rw.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+s.URL()+`/common/oauth2/authorize", client_id="`+graphAppID+`"`)
		graphError(g.w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", err.Error())
		return
	}
	g.p = p
	answered, latency := s.injectFault(rw, r, g.class)
	if answered {
		sw.status = -1 // counted as a fault, not a response
		return
	}
	g.latency = latency
	if s.appThrottled(g) {
		return
	}
	s.dispatch(g)
}

// classify names the endpoint class of a path.
func classify(nodes []node) string {
	last := nodes[len(nodes)-1]
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.name
	}
	path := strings.Join(names, "/")
	switch {
	case nodes[0].name == "subscriptions":
		return "subscriptions"
	case nodes[0].name == "$batch":
		return "batch"
	case last.name == "sendmail" || last.name == "send" || isSendResponse(last.name):
		return "send"
	case strings.Contains(path, "attachments"):
		return "attachments"
	case last.name == "delta" && len(nodes) >= 2 && nodes[len(nodes)-2].name == "messages":
		return "delta"
	case len(nodes) == 2 && nodes[0].name == "users" && !nodes[0].keyed && last.name == "delta":
		return "users"
	case last.name == "delta":
		return "folders"
	case strings.Contains(path, "messages"):
		return "messages"
	case strings.Contains(path, "mailfolders"):
		return "folders"
	}
	return "users"
}

// dispatch resolves the addressed user, then the resource.
func (s *Sim) dispatch(g *graphRequest) {
	first := g.nodes[0]
	switch first.name {
	case "me":
		if !g.p.delegated() {
			errBadRequest(g.w, g.r, "/me request is only valid with delegated authentication flow.")
			return
		}
		s.mu.RLock()
		g.target = g.p.user
		s.mu.RUnlock()
		g.prefix = "me"
		g.nodes = g.nodes[1:]
	case "users":
		if !first.keyed {
			if len(g.nodes) == 2 && g.nodes[1].name == "delta" {
				sleep(g.r, g.latency)
				s.usersDelta(g)
				return
			}
			if len(g.nodes) > 1 {
				errResourceNotFound(g.w, g.r)
				return
			}
			sleep(g.r, g.latency)
			s.listUsers(g)
			return
		}
		s.mu.RLock()
		g.target = s.user(first.key)
		s.mu.RUnlock()
		if g.target == nil || (!g.p.delegated() && g.target.TenantID != g.p.tenantID) ||
			(g.p.delegated() && g.target.TenantID != g.p.user.TenantID) {
			if len(g.nodes) == 1 {
				graphError(g.w, g.r, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+first.key+"' does not exist or one of its queried reference-property objects are not present.")
			} else {
				graphError(g.w, g.r, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+first.key+"' is invalid.")
			}
			return
		}
		g.prefix = "users/" + url.PathEscape(first.key)
		g.nodes = g.nodes[1:]
	case "subscriptions":
		s.serveSubscriptions(g)
		return
	case "groups":
		sleep(g.r, g.latency)
		s.serveGroups(g)
		return
	case "$batch":
		s.serveBatch(g)
		return
	default:
		errResourceNotFound(g.w, g.r)
		return
	}
	if len(g.nodes) == 0 {
		sleep(g.r, g.latency)
		s.getUser(g, first.name == "me")
		return
	}
	s.serveMailbox(g)
}
