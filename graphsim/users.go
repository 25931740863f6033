package graphsim

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// userNames are the user properties graphsim writes, for the $select list
// of a context URL (docs/graph.md#users).
var userNames = []string{"id", "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation", "preferredLanguage", "surname", "userPrincipalName"}

// userJSON renders a user with Graph's default properties (docs/graph.md#users).
func userJSON(u *User) map[string]any {
	given, sur, _ := strings.Cut(u.DisplayName, " ")
	var mail any = u.Mail
	if u.Mail == "" {
		mail = nil
	}
	return map[string]any{
		"businessPhones":    []string{},
		"displayName":       u.DisplayName,
		"givenName":         given,
		"jobTitle":          nil,
		"mail":              mail,
		"mobilePhone":       nil,
		"officeLocation":    nil,
		"preferredLanguage": "en-US",
		"surname":           sur,
		"userPrincipalName": u.UPN,
		"id":                u.ID,
	}
}

func (s *Sim) getUser(g *graphRequest, me bool) {
	p := g.p
	switch {
	case me:
		if !p.has("User.Read", "User.ReadWrite", "User.ReadBasic.All", "User.Read.All", "Directory.Read.All") {
			graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
			return
		}
	case p.delegated() && p.user.ID == g.target.ID && p.has("User.Read"):
	case !p.has("User.ReadBasic.All", "User.Read.All", "Directory.Read.All"):
		graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	s.mu.RLock()
	body := userJSON(g.target)
	s.mu.RUnlock()
	body["@odata.context"] = s.URL() + "/v1.0/$metadata#users" + selectList(g.r.URL.Query().Get("$select"), userNames) + "/$entity"
	writeJSON(g.w, http.StatusOK, body)
}

// listUsers pages through the tenant's directory with $skiptoken
// (docs/graph.md#users: /users has no $skip).
func (s *Sim) listUsers(g *graphRequest) {
	p := g.p
	q := g.r.URL.Query()
	if !p.has("User.ReadBasic.All", "User.Read.All", "Directory.Read.All") {
		graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	if q.Has("$skip") {
		errBadRequest(g.w, g.r, "'$skip' is not supported by the service.")
		return
	}
	top := 100
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			graphError(g.w, g.r, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive.")
			return
		}
		top = n
	}
	s.mu.RLock()
	tenant := p.tenantID
	if s.tenants[tenant] != nil && s.tenants[tenant].Personal {
		s.mu.RUnlock()
		graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	var all []*User
	for _, u := range s.users {
		if u.TenantID == tenant {
			all = append(all, u)
		}
	}
	slices.SortFunc(all, func(a, b *User) int { return strings.Compare(a.ID, b.ID) })
	after := q.Get("$skiptoken")
	var buf bytes.Buffer
	n := 0
	var next string
	for _, u := range all {
		if after != "" && u.ID <= after {
			continue
		}
		if n == top {
			next = all[slices.Index(all, u)-1].ID
			break
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		writeValue(&buf, userJSON(u))
		n++
	}
	s.mu.RUnlock()
	links := map[string]string{}
	if next != "" {
		nq := q
		nq.Del("$skiptoken")
		nq.Set("$top", strconv.Itoa(top))
		nq.Set("$skiptoken", next)
		links["@odata.nextLink"] = s.URL() + "/v1.0/users?" + nq.Encode()
	}
	writeCollection(g.w, s.URL()+"/v1.0/$metadata#users"+selectList(q.Get("$select"), userNames), &buf, links)
}
