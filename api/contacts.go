package api

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.temporal.io/api/serviceerror"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// Contacts in one request, and the body that carries them.
const (
	maxContactsPerRequest = 10000
	maxContactsBody       = 2 << 20
)

// contactJSON is a contact as the API shows it.
type contactJSON struct {
	Address string     `json:"address"`
	Name    string     `json:"name,omitempty"`
	AddedAt *time.Time `json:"added_at,omitempty"`
	// PastMailFetchedAt is when the contact's past mail was fetched (absent
	// while it waits).
	PastMailFetchedAt *time.Time `json:"past_mail_fetched_at,omitempty"`
}

// contactsStatusJSON is where a mailbox's contacts stand: the filter, and
// the fetch of added contacts' past mail (from the workflow's status).
type contactsStatusJSON struct {
	Filter         bool       `json:"filter"`
	Fetching       bool       `json:"fetching"`
	Waiting        int64      `json:"waiting"`
	FetchedContact int64      `json:"fetched_contacts"`
	FetchedMessage int64      `json:"fetched_messages"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	LastFetchedAt  *time.Time `json:"last_fetched_at,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
}

// contactsStatus is the contacts part of a status.
func contactsStatus(st *workflows.Status) *contactsStatusJSON {
	k := st.Contacts
	if !st.Settings.ContactFilter && k.Runs == 0 && !k.Fetching {
		return nil
	}
	return &contactsStatusJSON{Filter: st.Settings.ContactFilter, Fetching: k.Fetching, Waiting: k.Remaining,
		FetchedContact: k.Contacts, FetchedMessage: k.Messages, StartedAt: timePtr(k.StartedAt),
		LastFetchedAt: timePtr(k.LastCompleted), LastError: k.LastError}
}

// contactScope is the mailbox whose contacts a request reads or changes.
type contactScope struct {
	key string
	// workflowID syncs the mailbox.
	workflowID string
	state      string
	// filtered: the mailbox's contact filter is on.
	filtered bool
}

// contactsOf loads the mailbox a contacts route names: a delegated
// connection's own, or an attached mailbox.
func (s *server) contactsOf(c *gin.Context, want access) (contactScope, bool) {
	if c.Param("mbx") != "" {
		_, m, ok := s.mailbox(c, want)
		return contactScope{key: m.ID, workflowID: workflowOf(m), state: m.State, filtered: mailboxSettings(m).ContactFilter}, ok
	}
	row, ok := s.connection(c, want)
	if !ok {
		return contactScope{}, false
	}
	if row.Mode != workflows.ModeDelegated {
		problem(c, http.StatusConflict, "no_own_mailbox", "This connection syncs no mailbox of its own; contacts belong to its attached mailboxes (.../mailboxes/{mailbox}/contacts).")
		return contactScope{}, false
	}
	return contactScope{key: row.ID, workflowID: workflows.ConnectionWorkflowID(row.ID), state: row.State, filtered: settingsOf(row).ContactFilter}, true
}

// validAddress says whether a contact's address looks like an SMTP
// address: one @ between a local part and a domain, no spaces.
func validAddress(a string) bool {
	local, domain, ok := strings.Cut(a, "@")
	return ok && local != "" && domain != "" && len(a) <= 320 && !strings.ContainsAny(a, " \t\r\n<>,;\"") && !strings.Contains(domain, "@")
}

// addContacts adds contacts in bulk; the mailbox's workflow is told, and
// fetches the new contacts' past mail (with the contact filter on).
func (s *server) addContacts(c *gin.Context) {
	sc, ok := s.contactsOf(c, accessChange)
	if !ok {
		return
	}
	var req struct {
		Contacts []struct {
			Address string `json:"address"`
			Name    string `json:"name"`
		} `json:"contacts"`
	}
	if !bindUpTo(c, &req, maxContactsBody) {
		return
	}
	if len(req.Contacts) == 0 || len(req.Contacts) > maxContactsPerRequest {
		problem(c, http.StatusBadRequest, "invalid_contacts", "contacts must be a list of 1 to "+strconv.Itoa(maxContactsPerRequest)+" contacts.")
		return
	}
	cs := make([]store.Contact, 0, len(req.Contacts))
	for i, rc := range req.Contacts {
		a := strings.TrimSpace(rc.Address)
		if !validAddress(a) {
			problem(c, http.StatusBadRequest, "invalid_address", "contacts["+strconv.Itoa(i)+"].address must be an e-mail address.")
			return
		}
		if len(rc.Name) > 256 {
			problem(c, http.StatusBadRequest, "invalid_contacts", "contacts["+strconv.Itoa(i)+"].name is longer than 256 characters.")
			return
		}
		cs = append(cs, store.Contact{Address: a, Name: rc.Name})
	}
	if sc.state == workflows.StateDisconnected {
		problem(c, http.StatusConflict, "connection_ended", "This mailbox is disconnected; its contacts can no longer change.")
		return
	}
	// Without the filter the mailbox stores all its mail: nothing to fetch.
	added, err := s.d.Store.AddContacts(c, sc.key, cs, !sc.filtered)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	counts, err := s.d.Store.CountContacts(c, sc.key)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	// Told whenever contacts wait, so a request retried after a failed
	// signal tells it again.
	if counts.Unfetched > 0 && !s.tellContacts(c, sc) {
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"added": added, "existing": int64(len(cs)) - added, "total": counts.Total, "waiting": counts.Unfetched})
}

// tellContacts signals the mailbox's workflow that contacts were added. A
// workflow that has ended needs no telling.
func (s *server) tellContacts(c *gin.Context, sc contactScope) bool {
	ctx, cancel := context.WithTimeout(c, updateTimeout)
	defer cancel()
	err := s.d.Temporal.SignalWorkflow(ctx, sc.workflowID, "", workflows.SignalContacts, nil)
	var nf *serviceerror.NotFound
	if err != nil && !errors.As(err, &nf) {
		s.d.Logger.Error("signal contacts", "workflow", sc.workflowID, "err", err)
		problem(c, http.StatusServiceUnavailable, "unavailable", "The contacts are saved, but their past mail could not be asked for yet; send the same request again shortly.")
		return false
	}
	return true
}

// removeContacts removes contacts in bulk, keeping or deleting their mail.
func (s *server) removeContacts(c *gin.Context) {
	sc, ok := s.contactsOf(c, accessChange)
	if !ok {
		return
	}
	var req struct {
		Addresses []string `json:"addresses"`
		Mail      string   `json:"mail"`
	}
	if !bindUpTo(c, &req, maxContactsBody) {
		return
	}
	if len(req.Addresses) == 0 || len(req.Addresses) > maxContactsPerRequest {
		problem(c, http.StatusBadRequest, "invalid_contacts", "addresses must be a list of 1 to "+strconv.Itoa(maxContactsPerRequest)+" addresses.")
		return
	}
	if req.Mail != "keep" && req.Mail != "delete" {
		problem(c, http.StatusBadRequest, "invalid_mail", `mail must be "keep" (the contacts' stored mail stays) or "delete" (mail from or to no remaining contact goes).`)
		return
	}
	for i, a := range req.Addresses {
		if !validAddress(strings.TrimSpace(a)) {
			problem(c, http.StatusBadRequest, "invalid_address", "addresses["+strconv.Itoa(i)+"] must be an e-mail address.")
			return
		}
	}
	removed, deleted, err := s.d.Store.RemoveContacts(c, sc.key, req.Addresses, req.Mail == "delete")
	if errors.Is(err, store.ErrNotFound) {
		problem(c, http.StatusNotFound, "mailbox_not_found", "This connection has no mailbox with this ID.")
		return
	}
	if err != nil {
		s.unavailable(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"removed": removed, "messages_deleted": deleted})
}

// listContacts pages a mailbox's contacts by address.
func (s *server) listContacts(c *gin.Context) {
	sc, ok := s.contactsOf(c, accessRead)
	if !ok {
		return
	}
	limit, ok := limitParam(c, 1000, 5000)
	if !ok {
		return
	}
	after := ""
	if v := c.Query("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || !validAddress(string(raw)) {
			problem(c, http.StatusBadRequest, "invalid_cursor", "The cursor is not one this API gave out.")
			return
		}
		after = string(raw)
	}
	cs, err := s.d.Store.ListContacts(c, sc.key, after, limit+1)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	counts, err := s.d.Store.CountContacts(c, sc.key)
	if err != nil {
		s.unavailable(c, err)
		return
	}
	page := struct {
		Data       []contactJSON `json:"data"`
		Total      int64         `json:"total"`
		Waiting    int64         `json:"waiting"`
		NextCursor string        `json:"next_cursor,omitempty"`
	}{Data: []contactJSON{}, Total: counts.Total, Waiting: counts.Unfetched}
	if len(cs) > limit {
		cs = cs[:limit]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(cs[limit-1].Address))
	}
	for _, k := range cs {
		added := k.AddedAt
		page.Data = append(page.Data, contactJSON{Address: k.Address, Name: k.Name, AddedAt: &added, PastMailFetchedAt: k.FetchedAt})
	}
	c.PureJSON(http.StatusOK, page)
}
