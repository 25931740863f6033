package graphsim

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Group is a directory group: security or Microsoft 365, its members users
// or other groups (docs/graph.md#groups).
type Group struct {
	ID          string `json:"id"`
	TenantID    string `json:"tenantId"`
	DisplayName string `json:"displayName"`
	// Members are the direct members' IDs, users and groups, in the order
	// they were added.
	Members []string `json:"members"`
}

// GroupSpec describes a group to create.
type GroupSpec struct {
	ID          string `json:"id,omitempty"`
	Tenant      string `json:"tenant"`
	DisplayName string `json:"displayName"`
	// Members are users (ID or address) or groups (ID) of the tenant.
	Members []string `json:"members,omitempty"`
}

// groupReadRoles are the application permissions, and the delegated
// ones, that let an app read a group and its members, least privileged
// first (https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers).
var groupReadRoles = []string{"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "GroupMember.ReadWrite.All", "Group.ReadWrite.All"}

// AddGroup creates a group with its first members.
func (s *Sim) AddGroup(spec GroupSpec) (*Group, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tenantFor(spec.Tenant)
	if t == nil || t.Personal {
		return nil, fmt.Errorf("graphsim: tenant %q: %w", spec.Tenant, ErrNotFound)
	}
	if spec.ID == "" {
		spec.ID = newGUID()
	}
	if s.groups[spec.ID] != nil {
		return nil, fmt.Errorf("graphsim: group %s exists", spec.ID)
	}
	if spec.DisplayName == "" {
		spec.DisplayName = "Group " + spec.ID[:8]
	}
	g := &Group{ID: spec.ID, TenantID: t.ID, DisplayName: spec.DisplayName}
	s.groups[g.ID] = g
	for _, m := range spec.Members {
		if err := s.addMemberLocked(g, m); err != nil {
			delete(s.groups, g.ID)
			return nil, err
		}
	}
	cp := *g
	cp.Members = slices.Clone(g.Members)
	return &cp, nil
}

// AddGroupMember adds a user (ID or address) or a group (ID) to a group,
// as an admin would.
func (s *Sim) AddGroupMember(group, member string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		return fmt.Errorf("graphsim: group %s: %w", group, ErrNotFound)
	}
	return s.addMemberLocked(g, member)
}

// RemoveGroupMember removes a direct member from a group.
func (s *Sim) RemoveGroupMember(group, member string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	if g == nil {
		return fmt.Errorf("graphsim: group %s: %w", group, ErrNotFound)
	}
	id := member
	if u := s.user(member); u != nil {
		id = u.ID
	}
	i := slices.Index(g.Members, id)
	if i < 0 {
		return fmt.Errorf("graphsim: %s is not a member of %s: %w", member, group, ErrNotFound)
	}
	g.Members = slices.Delete(g.Members, i, i+1)
	return nil
}

func (s *Sim) addMemberLocked(g *Group, member string) error {
	id := ""
	if u := s.user(member); u != nil && u.TenantID == g.TenantID {
		id = u.ID
	} else if sub := s.groups[member]; sub != nil && sub.TenantID == g.TenantID && sub.ID != g.ID {
		id = sub.ID
	}
	if id == "" {
		return fmt.Errorf("graphsim: no user or group %q in the group's tenant: %w", member, ErrNotFound)
	}
	if !slices.Contains(g.Members, id) {
		g.Members = append(g.Members, id)
	}
	return nil
}

// transitiveMembers lists a group's members and their groups' members,
// each once, groups before their members, as Graph does; cycles end. The
// caller holds s.mu.
func (s *Sim) transitiveMembers(g *Group) []string {
	var out []string
	seen := map[string]bool{g.ID: true}
	var walk func(*Group)
	walk = func(g *Group) {
		for _, m := range g.Members {
			if seen[m] {
				continue
			}
			seen[m] = true
			out = append(out, m)
			if sub := s.groups[m]; sub != nil {
				walk(sub)
			}
		}
	}
	walk(g)
	return out
}

// serveGroups serves GET /groups/{id}, /groups/{id}/members and
// /groups/{id}/transitiveMembers, each optionally cast to users
// (/microsoft.graph.user, or /graph.user as the Go SDK writes it; parsePath
// drops the full namespace) (https://learn.microsoft.com/en-us/graph/api/group-list-members,
// https://learn.microsoft.com/en-us/graph/api/group-list-transitivemembers).
func (s *Sim) serveGroups(g *graphRequest) {
	if g.r.Method != http.MethodGet {
		graphError(g.w, g.r, http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not supported on this resource.")
		return
	}
	first := g.nodes[0]
	if !first.keyed {
		errResourceNotFound(g.w, g.r)
		return
	}
	if s.directoryThrottled(g, false) {
		return
	}
	if !g.p.has(groupReadRoles...) {
		graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	grp := s.groups[first.key]
	tenant := g.p.tenantID
	if g.p.delegated() {
		tenant = g.p.user.TenantID
	}
	if grp == nil || grp.TenantID != tenant {
		graphError(g.w, g.r, http.StatusNotFound, "Request_ResourceNotFound", "Resource '"+first.key+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	rest := g.nodes[1:]
	if len(rest) == 0 {
		body := map[string]any{"@odata.context": s.URL() + "/v1.0/$metadata#groups/$entity", "id": grp.ID, "displayName": grp.DisplayName,
			"securityEnabled": true, "mailEnabled": false, "groupTypes": []string{}}
		writeJSON(g.w, http.StatusOK, body)
		return
	}
	var ids []string
	switch rest[0].name {
	case "members":
		ids = grp.Members
	case "transitivemembers":
		ids = s.transitiveMembers(grp)
	default:
		errResourceNotFound(g.w, g.r)
		return
	}
	usersOnly := false
	switch {
	case len(rest) == 2 && (rest[1].name == "user" || rest[1].name == "graph.user"):
		usersOnly = true
	case len(rest) > 1:
		errResourceNotFound(g.w, g.r)
		return
	}
	q := g.r.URL.Query()
	top := 100
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 999 {
			graphError(g.w, g.r, http.StatusBadRequest, "Request_UnsupportedQuery", "Invalid page size specified: '"+v+"'. Must be between 1 and 999 inclusive.")
			return
		}
		top = n
	}
	var objs []string
	for _, id := range ids {
		if u := s.users[id]; u != nil {
			objs = append(objs, id)
		} else if !usersOnly && s.groups[id] != nil {
			objs = append(objs, id)
		}
	}
	from := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(raw), grp.ID+":"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(raw), grp.ID+":") || n < 0 || n > len(objs) {
			errBadRequest(g.w, g.r, "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		from = n
	}
	end := min(from+top, len(objs))
	var buf bytes.Buffer
	for i, id := range objs[from:end] {
		if i > 0 {
			buf.WriteByte(',')
		}
		if u := s.users[id]; u != nil {
			v := renderUser(u, nil)
			v["@odata.type"] = "#microsoft.graph.user"
			writeValue(&buf, v)
			continue
		}
		sub := s.groups[id]
		writeValue(&buf, map[string]any{"@odata.type": "#microsoft.graph.group", "id": sub.ID, "displayName": sub.DisplayName})
	}
	links := map[string]string{}
	if end < len(objs) {
		next := *g.r.URL
		nq := next.Query()
		nq.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(grp.ID+":"+strconv.Itoa(end))))
		next.RawQuery = nq.Encode()
		links["@odata.nextLink"] = s.URL() + next.RequestURI()
	}
	context := s.URL() + "/v1.0/$metadata#directoryObjects"
	if usersOnly {
		context = s.URL() + "/v1.0/$metadata#users"
	}
	writeCollection(g.w, context, &buf, links)
}
