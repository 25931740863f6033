package graphsim_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

const redirectURI = simtest.RedirectURI

// fixture is a started simulator with one tenant, an app and some users.
type fixture struct {
	*simtest.Tenant
	sim    *graphsim.Sim
	ctl    *graphsim.Client
	tenant *graphsim.Tenant
	app    *graphsim.App
	ada    *graphsim.User
	admin  *graphsim.User
	shared *graphsim.User
}

func newFixture(t *testing.T, opts graphsim.Options) *fixture {
	t.Helper()
	st := simtest.Start(t, opts)
	return &fixture{Tenant: st, sim: st.Sim, ctl: st.Ctl, tenant: st.Tenant, app: st.App, ada: st.Ada, admin: st.Admin, shared: st.Shared}
}

func (f *fixture) oauth(tenant string, scopes ...string) *oauth2.Config {
	return f.OAuth(tenant, scopes...)
}

var noRedirect = simtest.NoRedirect

func authorize(t *testing.T, authURL string) url.Values { return simtest.Authorize(t, authURL) }

func (f *fixture) signIn(t *testing.T, user string, scopes ...string) *oauth2.Token {
	return f.SignIn(t, user, scopes...)
}

// graphGet calls Graph with a bearer token and decodes JSON into out.
func (f *fixture) graphGet(t *testing.T, token, path string, out any, headers ...string) (int, http.Header) {
	t.Helper()
	return f.call(t, "GET", path, token, nil, out, headers...)
}

// call sends a request (path relative to Graph's root, or absolute) with a
// bearer token and extra header pairs, and decodes the JSON answer.
func (f *fixture) call(t *testing.T, method, path, token string, body io.Reader, out any, headers ...string) (int, http.Header) {
	t.Helper()
	u := strings.ReplaceAll(path, " ", "%20")
	if !strings.HasPrefix(path, "http") {
		u = f.sim.GraphURL() + u
	}
	req, _ := http.NewRequest(method, u, body)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if strings.EqualFold(headers[i], "Prefer") {
			req.Header.Add(headers[i], headers[i+1])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d, decode %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, resp.Header
}

// graphErr is Graph's error body.
type graphErr struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			RequestID string `json:"request-id"`
			Date      string `json:"date"`
		} `json:"innerError"`
	} `json:"error"`
}

// graphDo sends a request with a JSON (or raw string) body.
func (f *fixture) graphDo(t *testing.T, token, method, path string, body any, out any, headers ...string) (int, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	return f.call(t, method, path, token, rd, out, headers...)
}
