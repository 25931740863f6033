package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// directory tracks a tenant's user changes for /users/delta
// (docs/graph.md#users-delta): every change of a user takes the next
// sequence number; deleted users are kept for restore (reason "changed"),
// and permanently deleted ones leave a tombstone (reason "deleted").
type directory struct {
	seq     int64
	deleted map[string]*User // soft-deleted users by ID, restorable
	purged  map[string]int64 // permanently deleted user ID -> sequence
}

func (t *Tenant) directory() *directory {
	if t.dir == nil {
		t.dir = &directory{deleted: map[string]*User{}, purged: map[string]int64{}}
	}
	return t.dir
}

// touchUser records a change of u in its tenant's directory. The caller
// holds s.mu.
func (s *Sim) touchUser(u *User) {
	d := s.tenants[u.TenantID].directory()
	d.seq++
	u.dirSeq = d.seq
}

// userField is a user property $select can name.
type userField struct {
	name   string
	byDef  bool // returned without $select
	render func(u *User) any
}

func orNil(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// userFields are the user properties graphsim knows, in Graph's order
// (docs/graph.md#users).
var userFields = []userField{
	{"businessPhones", true, func(*User) any { return []string{} }},
	{"displayName", true, func(u *User) any { return u.DisplayName }},
	{"givenName", true, func(u *User) any { g, _, _ := strings.Cut(u.DisplayName, " "); return g }},
	{"jobTitle", true, func(*User) any { return nil }},
	{"mail", true, func(u *User) any { return orNil(u.Mail) }},
	{"mobilePhone", true, func(*User) any { return nil }},
	{"officeLocation", true, func(*User) any { return nil }},
	{"preferredLanguage", true, func(*User) any { return "en-US" }},
	{"surname", true, func(u *User) any { _, s, _ := strings.Cut(u.DisplayName, " "); return s }},
	{"userPrincipalName", true, func(u *User) any { return u.UPN }},
	{"id", true, func(u *User) any { return u.ID }},
	// A shared mailbox's account cannot sign in: Exchange creates it disabled.
	{"accountEnabled", false, func(u *User) any { return !u.AccountDisabled && !u.Shared }},
	{"userType", false, func(*User) any { return "Member" }},
	{"mailNickname", false, func(u *User) any { n, _, _ := strings.Cut(u.UPN, "@"); return n }},
}

// parseUserSelect reads $select on users: nil for the default properties.
func parseUserSelect(raw string) ([]int, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var sel []int
	for p := range strings.SplitSeq(raw, ",") {
		p = strings.TrimSpace(p)
		i := slices.IndexFunc(userFields, func(f userField) bool { return strings.EqualFold(f.name, p) })
		if i < 0 {
			return nil, fmt.Errorf("Could not find a property named '%s' on type 'microsoft.graph.user'.", p)
		}
		if !slices.Contains(sel, i) {
			sel = append(sel, i)
		}
	}
	return sel, nil
}

// renderUser renders the selected properties of u; id is always there.
func renderUser(u *User, sel []int) map[string]any {
	out := map[string]any{}
	for i, f := range userFields {
		if (sel == nil && f.byDef) || slices.Contains(sel, i) || f.name == "id" {
			out[f.name] = f.render(u)
		}
	}
	return out
}

// selectContext is the @odata.context suffix of a $select: "(a,b)".
func selectContext(sel []int) string {
	if sel == nil {
		return ""
	}
	names := make([]string, len(sel))
	for i, f := range sel {
		names[i] = userFields[f].name
	}
	return "(" + strings.Join(names, ",") + ")"
}

// usersDeltaState is what a /users/delta $skiptoken or $deltatoken
// carries; clients treat it as opaque.
type usersDeltaState struct {
	Tenant string `json:"t"`
	// W is the watermark of the previous round, H the sequence this round
	// stops at, C the last one served.
	W, H, C int64
	Select  string `json:"sel,omitempty"`
	Initial bool   `json:"init,omitempty"`
	Issued  int64  `json:"iss"`
}

func encodeUsersDelta(st usersDeltaState) string {
	b, _ := json.Marshal(st)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeUsersDelta(tok string) (usersDeltaState, bool) {
	var st usersDeltaState
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &st) != nil || st.Tenant == "" {
		return st, false
	}
	return st, true
}

// dirEntry is one user as a delta round sees it.
type dirEntry struct {
	seq     int64
	user    *User  // nil for a tombstone
	id      string // the user's ID
	removed string // "", "changed" (deleted, restorable) or "deleted" (gone)
}

// directoryEntries lists the tenant's users changed after seq from, up to
// to, in sequence order. The caller holds s.mu.
func (s *Sim) directoryEntries(t *Tenant, from, to int64, initial bool) []dirEntry {
	d := t.directory()
	var out []dirEntry
	in := func(seq int64) bool { return seq > from && seq <= to }
	for _, u := range s.users {
		if u.TenantID == t.ID && in(u.dirSeq) {
			out = append(out, dirEntry{seq: u.dirSeq, user: u, id: u.ID})
		}
	}
	if !initial {
		for id, u := range d.deleted {
			if in(u.dirSeq) {
				out = append(out, dirEntry{seq: u.dirSeq, id: id, removed: "changed"})
			}
		}
		for id, seq := range d.purged {
			if in(seq) {
				out = append(out, dirEntry{seq: seq, id: id, removed: "deleted"})
			}
		}
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return int(a.seq - b.seq) })
	return out
}

// usersDelta serves /users/delta (docs/graph.md#users-delta): a first
// round pages through every user with $skiptoken nextLinks and ends with a
// $deltatoken deltaLink; later rounds return the users who joined or
// changed since, and those deleted as @removed ("changed" while they can be
// restored, "deleted" once they are gone for good).
func (s *Sim) usersDelta(g *graphRequest) {
	if s.directoryThrottled(g, false) {
		return
	}
	p, q := g.p, g.r.URL.Query()
	if !p.has("User.ReadBasic.All", "User.Read.All", "Directory.Read.All") {
		graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	for _, unsupported := range []string{"$filter", "$orderby", "$expand", "$search", "$skip"} {
		if q.Has(unsupported) {
			graphError(g.w, g.r, http.StatusBadRequest, "Request_UnsupportedQuery", "The query option '"+unsupported+"' is not supported by the users delta function.")
			return
		}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tenants[p.tenantID]
	if t == nil || t.Personal {
		graphError(g.w, g.r, http.StatusForbidden, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
		return
	}
	now := s.clock.Now()
	base := s.URL() + "/v1.0/users/delta"
	d := t.directory()
	var st usersDeltaState
	switch tok, isSkip := q.Get("$skiptoken"), q.Has("$skiptoken"); {
	case q.Get("$deltatoken") == "latest":
		// "Sync from now": no users, a deltaLink from the current state.
		st = usersDeltaState{Tenant: t.ID, W: d.seq, H: d.seq, C: d.seq, Select: q.Get("$select"), Issued: now.Unix()}
	case isSkip || q.Has("$deltatoken"):
		if !isSkip {
			tok = q.Get("$deltatoken")
		}
		var ok bool
		st, ok = decodeUsersDelta(tok)
		if !ok || st.Tenant != t.ID {
			errBadRequest(g.w, g.r, "The delta token is not valid for this request.")
			return
		}
		if now.Sub(time.Unix(st.Issued, 0)) > s.opts.DirectoryDeltaTokenMaxAge {
			// Documented only as "a 40X-series error" and a 410 with a
			// Location to start over (docs/graph.md#users-delta).
			g.w.Header().Set("Location", base)
			graphError(g.w, g.r, http.StatusGone, "resyncRequired", "The delta token is no longer valid, and the app must reset the sync state.")
			return
		}
		if !isSkip {
			st = usersDeltaState{Tenant: t.ID, W: st.W, H: d.seq, C: st.W, Select: st.Select, Issued: now.Unix()}
		}
	default:
		st = usersDeltaState{Tenant: t.ID, H: d.seq, Select: q.Get("$select"), Initial: true, Issued: now.Unix()}
	}
	sel, err := parseUserSelect(st.Select)
	if err != nil {
		graphError(g.w, g.r, http.StatusBadRequest, "Request_BadRequest", err.Error())
		return
	}
	entries := s.directoryEntries(t, st.C, st.H, st.Initial)
	n := min(len(entries), s.opts.UsersDeltaPageSize)
	var buf bytes.Buffer
	for i, e := range entries[:n] {
		if i > 0 {
			buf.WriteByte(',')
		}
		if e.removed != "" {
			writeValue(&buf, map[string]any{"id": e.id, "@removed": map[string]string{"reason": e.removed}})
		} else {
			writeValue(&buf, renderUser(e.user, sel))
		}
		st.C = e.seq
	}
	links := map[string]string{}
	if n < len(entries) {
		links["@odata.nextLink"] = base + "?$skiptoken=" + encodeUsersDelta(st)
	} else {
		links["@odata.deltaLink"] = base + "?$deltatoken=" + encodeUsersDelta(usersDeltaState{Tenant: t.ID, W: st.H, Select: st.Select, Issued: now.Unix()})
	}
	writeCollection(g.w, s.URL()+"/v1.0/$metadata#users"+selectContext(sel), &buf, links)
}

// liveUser resolves a user of the directory for a control method. The
// caller holds s.mu.
func (s *Sim) liveUser(idOrUPN string) (*User, error) {
	u := s.user(idOrUPN)
	if u == nil {
		return nil, fmt.Errorf("graphsim: user %q: %w", idOrUPN, ErrNotFound)
	}
	return u, nil
}

// DisableUser blocks a user's sign-in (accountEnabled false), as an admin
// does in Entra: refresh tokens die with AADSTS50057 and new sign-ins are
// refused. The mailbox stays reachable with application permissions.
func (s *Sim) DisableUser(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.liveUser(user)
	if err != nil {
		return err
	}
	if !u.AccountDisabled {
		u.AccountDisabled = true
		s.revokeLocked(u, RevokeDisabled)
		s.touchUser(u)
	}
	return nil
}

// EnableUser lets a disabled user sign in again; the refresh tokens
// revoked when the account was disabled stay dead.
func (s *Sim) EnableUser(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.liveUser(user)
	if err != nil {
		return err
	}
	if u.AccountDisabled {
		u.AccountDisabled = false
		s.touchUser(u)
	}
	return nil
}

// UserUpdate changes a user's directory properties.
type UserUpdate struct {
	DisplayName *string `json:"displayName,omitempty"`
}

// UpdateUser changes a user's properties, which /users/delta reports as a
// change.
func (s *Sim) UpdateUser(user string, up UserUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.liveUser(user)
	if err != nil {
		return err
	}
	if up.DisplayName != nil {
		u.DisplayName = *up.DisplayName
	}
	s.touchUser(u)
	return nil
}

// DeleteUser deletes a user as Entra does: into the deleted items, from
// which RestoreDeletedUser brings it back with its mailbox (within 30
// days), or, with permanent, for good. A deleted user (its ID) can be
// deleted permanently afterwards. The user vanishes from /users, sign-in and
// Graph paths at once; /users/delta reports it as removed.
func (s *Sim) DeleteUser(user string, permanent bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	var d *directory
	switch {
	case u != nil:
		if s.tenants[u.TenantID].Personal {
			return errors.New("graphsim: personal accounts are not in a directory")
		}
		d = s.tenants[u.TenantID].directory()
		delete(s.users, u.ID)
		delete(s.userByName, strings.ToLower(u.UPN))
		d.deleted[u.ID] = u
		s.touchUser(u)
	default:
		for _, t := range s.tenants {
			if t.dir != nil && t.dir.deleted[user] != nil {
				u, d = t.dir.deleted[user], t.dir
			}
		}
		if u == nil {
			return fmt.Errorf("graphsim: user %q: %w", user, ErrNotFound)
		}
		if !permanent {
			return nil
		}
	}
	if permanent {
		delete(d.deleted, u.ID)
		d.seq++
		d.purged[u.ID] = d.seq
	}
	return nil
}

// RestoreDeletedUser brings a deleted (not permanently deleted) user back,
// by ID, with its mailbox.
func (s *Sim) RestoreDeletedUser(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tenants {
		if t.dir == nil || t.dir.deleted[id] == nil {
			continue
		}
		u := t.dir.deleted[id]
		if s.userByName[strings.ToLower(u.UPN)] != nil {
			return fmt.Errorf("graphsim: %s is taken by another user", u.UPN)
		}
		delete(t.dir.deleted, id)
		s.users[u.ID] = u
		s.userByName[strings.ToLower(u.UPN)] = u
		s.touchUser(u)
		return nil
	}
	return fmt.Errorf("graphsim: deleted user %q: %w", id, ErrNotFound)
}
