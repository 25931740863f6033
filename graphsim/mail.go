package graphsim

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// mailAccess checks that the caller may read (or write) the target's mail;
// basic reports a Mail.ReadBasic-only caller (no bodies or attachments).
func (s *Sim) mailAccess(g *graphRequest, write bool) (basic bool, ok bool) {
	p, t := g.p, g.target
	if t.NoMailbox {
		graphError(g.w, g.r, http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
		return false, false
	}
	if !p.delegated() {
		if s.tenants[t.TenantID].Personal {
			errAccessDenied(g.w, g.r)
			return false, false
		}
		switch {
		case write && p.has("Mail.ReadWrite"):
			return false, true
		case !write && p.has("Mail.Read", "Mail.ReadWrite"):
			return false, true
		case !write && p.has("Mail.ReadBasic.All"):
			return true, true
		}
		errAccessDenied(g.w, g.r)
		return false, false
	}
	if p.user.ID == t.ID {
		// The .Shared scopes cover the user's own mail too
		// (docs/graph.md#shared-mailboxes).
		switch {
		case write && p.has("Mail.ReadWrite", "Mail.ReadWrite.Shared"):
			return false, true
		case !write && p.has("Mail.Read", "Mail.ReadWrite", "Mail.Read.Shared", "Mail.ReadWrite.Shared"):
			return false, true
		case !write && p.has("Mail.ReadBasic"):
			return true, true
		}
		errAccessDenied(g.w, g.r)
		return false, false
	}
	// Another user's mailbox: the .Shared scopes and a mailbox right,
	// checked on every request (docs/graph.md#shared-mailboxes,
	// docs/graph.md#mailbox-rights).
	switch {
	case write && p.has("Mail.ReadWrite.Shared") && mayWrite(t, p.user.ID):
		return false, true
	case !write && p.has("Mail.Read.Shared", "Mail.ReadWrite.Shared") && mayRead(t, p.user.ID):
		return false, true
	}
	errAccessDenied(g.w, g.r)
	return false, false
}

var preferIDType = regexp.MustCompile(`(?i)IdType\s*=\s*"?ImmutableId"?`)
var preferBody = regexp.MustCompile(`(?i)outlook\.body-content-type\s*=\s*"?(text|html)\b"?`)
var preferPageSize = regexp.MustCompile(`(?i)odata\.maxpagesize\s*=\s*(\d+)`)

// prefs reads the Prefer headers of a request; body is the body format
// asked for: "text", "html" or "" when none is named.
func prefs(r *http.Request) (immutable bool, body string, pageSize int) {
	for _, v := range r.Header.Values("Prefer") {
		if preferIDType.MatchString(v) {
			immutable = true
		}
		if m := preferBody.FindStringSubmatch(v); m != nil {
			body = strings.ToLower(m[1])
		}
		if m := preferPageSize.FindStringSubmatch(v); m != nil {
			pageSize, _ = strconv.Atoi(m[1])
		}
	}
	return
}

// preferenceApplied confirms, on a successful answer carrying messages, the
// body format the request asked for (docs/graph.md#message-properties). It
// is the only preference Outlook documents confirming: odata.maxpagesize
// and IdType are applied without a Preference-Applied.
func preferenceApplied(w http.ResponseWriter, o renderOpts) {
	if o.bodyPref != "" {
		w.Header().Set("Preference-Applied", `outlook.body-content-type="`+o.bodyPref+`"`)
	}
}

// serveMailbox serves everything under a user's mailbox.
func (s *Sim) serveMailbox(g *graphRequest) {
	if g.nodes[0].name == "mailboxsettings" {
		s.serveMailboxSettings(g)
		return
	}
	write := g.r.Method != http.MethodGet
	sending := len(g.nodes) == 1 && g.nodes[0].name == "sendmail" ||
		len(g.nodes) >= 2 && (g.nodes[len(g.nodes)-1].name == "send" || isSendResponse(g.nodes[len(g.nodes)-1].name))
	s.mu.RLock()
	basic, ok := false, true
	if s.policyBlocks(g.p, g.target) {
		// docs/graph.md#application-access-policies
		graphError(g.w, g.r, http.StatusForbidden, "ErrorAccessDenied", errPolicyDenied)
		ok = false
	} else if sending {
		if g.target.NoMailbox {
			graphError(g.w, g.r, http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
			ok = false
		}
	} else {
		basic, ok = s.mailAccess(g, write)
	}
	s.mu.RUnlock()
	if !ok {
		return
	}
	release, ok := s.acquireMailbox(g)
	if !ok {
		return
	}
	defer release()
	sleep(g.r, g.latency)
	immutable, body, pageSize := prefs(g.r)
	o := renderOpts{immutable: immutable, bodyPref: body, basic: basic}
	if g.r.Method == http.MethodGet {
		exp, ext, err := parseExpandAll(g.r.URL.Query().Get("$expand"))
		if err != nil {
			writeExtPropsError(g, err)
			return
		}
		o.expand, o.extProps = exp, ext
	}

	if g.r.Method != http.MethodGet {
		if !s.serveWrite(g, o) {
			graphError(g.w, g.r, http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not supported by this resource.")
		}
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	mb := g.target.mailbox
	nodes := g.nodes
	var folder *Folder
	switch nodes[0].name {
	case "mailfolders":
		if !nodes[0].keyed {
			switch {
			case len(nodes) == 1:
				s.listFolders(g, mb, mb.folders[mb.rootID])
			case len(nodes) == 2 && nodes[1].name == "delta":
				s.folderDelta(g, mb)
			default:
				errResourceNotFound(g.w, g.r)
			}
			return
		}
		folder = mb.folder(nodes[0].key)
		if folder == nil {
			errItemNotFound(g.w, g.r)
			return
		}
		nodes = nodes[1:]
		for len(nodes) > 0 && nodes[0].name == "childfolders" && nodes[0].keyed {
			child := mb.folder(nodes[0].key)
			if child == nil || child.ParentID != folder.ID {
				errItemNotFound(g.w, g.r)
				return
			}
			folder, nodes = child, nodes[1:]
		}
		switch {
		case len(nodes) == 0:
			s.writeFolder(g, mb, folder)
			return
		case len(nodes) == 1 && nodes[0].name == "childfolders":
			s.listFolders(g, mb, folder)
			return
		case nodes[0].name != "messages":
			errResourceNotFound(g.w, g.r)
			return
		}
	case "messages":
	default:
		errResourceNotFound(g.w, g.r)
		return
	}
	// nodes[0] is messages, within folder (or the whole mailbox).
	if !nodes[0].keyed {
		switch {
		case len(nodes) == 1:
			s.listMessages(g, mb, folder, o, pageSize)
		case len(nodes) == 2 && nodes[1].name == "delta" && folder != nil:
			s.messageDelta(g, mb, folder, o, pageSize)
		case len(nodes) == 2 && nodes[1].name == "delta":
			// docs/graph.md#delta-queries: there is no /me/messages/delta.
			errBadRequest(g.w, g.r, "Change tracking is not supported against 'microsoft.graph.message'.")
		default:
			errResourceNotFound(g.w, g.r)
		}
		return
	}
	m := mb.messageByID(nodes[0].key)
	if m == nil || (folder != nil && m.FolderID != folder.ID) {
		errItemNotFound(g.w, g.r)
		return
	}
	nodes = nodes[1:]
	switch {
	case len(nodes) == 0:
		sel, err := parseSelect(g.r.URL.Query().Get("$select"))
		if err != nil {
			errBadRequest(g.w, g.r, err.Error())
			return
		}
		var buf bytes.Buffer
		writeMessage(&buf, m, sel, o)
		body := buf.Bytes()
		var out bytes.Buffer
		out.WriteString(`{"@odata.context":`)
		writeValue(&out, s.contextURL(g, messageNames))
		out.WriteByte(',')
		out.Write(body[1:])
		preferenceApplied(g.w, o)
		writeRawJSON(g.w, http.StatusOK, out.Bytes())
	case nodes[0].name == "attachments":
		if basic {
			errAccessDenied(g.w, g.r)
			return
		}
		s.serveAttachments(g, m, nodes)
	default:
		errResourceNotFound(g.w, g.r)
	}
}

// contextURL is the @odata.context of a mailbox answer: the user as the
// client addressed it (by id for /me), the path with every key but the
// last, the $select list, and /$entity for a single item; names are the
// properties $select may name (docs/graph.md#listing-messages).
func (s *Sim) contextURL(g *graphRequest, names []string) string {
	user := g.target.ID
	if k, ok := strings.CutPrefix(g.prefix, "users/"); ok {
		if raw, err := url.PathUnescape(k); err == nil {
			user = raw
		}
	}
	path, entity := contextPath(g.nodes)
	ctx := s.URL() + "/v1.0/$metadata#users('" + odataKey(user) + "')" + path + selectList(g.r.URL.Query().Get("$select"), names)
	if entity {
		ctx += "/$entity"
	}
	return ctx
}

// folderJSON renders a mail folder (docs/graph.md#mail-folders).
func folderJSON(mb *mailbox, f *Folder) map[string]any {
	unread := 0
	for _, m := range f.items {
		if !m.IsRead {
			unread++
		}
	}
	return map[string]any{
		"id":               f.ID,
		"displayName":      f.DisplayName,
		"parentFolderId":   f.ParentID,
		"childFolderCount": len(f.children),
		"unreadItemCount":  unread,
		"totalItemCount":   len(f.items),
		"sizeInBytes":      len(f.items) * 4096,
		"isHidden":         f.Hidden,
	}
}

func (s *Sim) writeFolder(g *graphRequest, mb *mailbox, f *Folder) {
	body := folderJSON(mb, f)
	body["@odata.context"] = s.contextURL(g, folderNames)
	writeJSON(g.w, http.StatusOK, body)
}

// listFolders lists a folder's children: 10 per page by default, hidden
// folders only with includeHiddenFolders=true (docs/graph.md#mail-folders).
func (s *Sim) listFolders(g *graphRequest, mb *mailbox, parent *Folder) {
	q := g.r.URL.Query()
	top, skip, ok := pageParams(g, 10, 1000)
	if !ok {
		return
	}
	hidden := strings.EqualFold(q.Get("includeHiddenFolders"), "true")
	var kids []*Folder
	for _, id := range parent.children {
		if f := mb.folders[id]; f != nil && (hidden || !f.Hidden) {
			kids = append(kids, f)
		}
	}
	var buf bytes.Buffer
	end := min(skip+top, len(kids))
	for i := skip; i < end; i++ {
		if i > skip {
			buf.WriteByte(',')
		}
		writeValue(&buf, folderJSON(mb, kids[i]))
	}
	links := map[string]string{}
	if end < len(kids) {
		links["@odata.nextLink"] = s.nextSkipLink(g, top, end)
	}
	writeCollection(g.w, s.contextURL(g, folderNames), &buf, links)
}

// pageParams reads $top (1..max, default def) and $skip.
func pageParams(g *graphRequest, def, max int) (top, skip int, ok bool) {
	q := g.r.URL.Query()
	top = def
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > max {
			graphError(g.w, g.r, http.StatusBadRequest, "ErrorInvalidParameter", "The value '"+v+"' of parameter 'Top' is invalid; it must be between 1 and "+strconv.Itoa(max)+".")
			return 0, 0, false
		}
		top = n
	}
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			graphError(g.w, g.r, http.StatusBadRequest, "ErrorInvalidParameter", "The value '"+v+"' of parameter 'Skip' is invalid.")
			return 0, 0, false
		}
		skip = n
	}
	return top, skip, true
}

// nextSkipLink is the request's own URL with $top and a new $skip
// (docs/graph.md#listing-messages: message lists page with $skip).
func (s *Sim) nextSkipLink(g *graphRequest, top, skip int) string {
	q := g.r.URL.Query()
	q.Set("$top", strconv.Itoa(top))
	q.Set("$skip", strconv.Itoa(skip))
	return s.URL() + g.r.URL.Path + "?" + q.Encode()
}

// listMessages lists messages of a folder or the mailbox.
func (s *Sim) listMessages(g *graphRequest, mb *mailbox, f *Folder, o renderOpts, pageSize int) {
	q := g.r.URL.Query()
	def := 10
	if pageSize > 0 && !q.Has("$top") {
		def = min(pageSize, 1000)
	}
	top, skip, ok := pageParams(g, def, 1000)
	if !ok {
		return
	}
	sel, err := parseSelect(q.Get("$select"))
	if err != nil {
		errBadRequest(g.w, g.r, err.Error())
		return
	}
	filter, err := parseFilter(q.Get("$filter"))
	if err != nil {
		writeExtPropsError(g, err)
		return
	}
	order, err := parseOrderBy(q.Get("$orderby"))
	if err != nil {
		errBadRequest(g.w, g.r, err.Error())
		return
	}
	if inefficient(filter, order) {
		graphError(g.w, g.r, http.StatusBadRequest, "InefficientFilter", "The restriction or sort order is too complex for this operation.")
		return
	}
	if order == nil {
		order = []orderKey{{prop: "receiveddatetime", desc: true}}
	}
	var items []*Message
	for _, m := range mb.folderMessages(f) {
		ok, err := matches(m, filter)
		if err != nil {
			errBadRequest(g.w, g.r, err.Error())
			return
		}
		if ok {
			items = append(items, m)
		}
	}
	slices.SortFunc(items, func(a, b *Message) int { return compareBy(a, b, order) })
	var buf bytes.Buffer
	end := min(skip+top, len(items))
	for i := skip; i < end; i++ {
		if i > skip {
			buf.WriteByte(',')
		}
		writeMessage(&buf, items[i], sel, o)
	}
	links := map[string]string{}
	if end < len(items) {
		links["@odata.nextLink"] = s.nextSkipLink(g, top, end)
	}
	preferenceApplied(g.w, o)
	writeCollection(g.w, s.contextURL(g, messageNames), &buf, links)
}

// serveAttachments lists, gets, or streams ($value) attachments.
func (s *Sim) serveAttachments(g *graphRequest, m *Message, nodes []node) {
	if !nodes[0].keyed {
		if len(nodes) > 1 {
			errResourceNotFound(g.w, g.r)
			return
		}
		var buf bytes.Buffer
		for i, a := range m.Attachments {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeValue(&buf, attachmentJSON(a))
		}
		writeCollection(g.w, s.URL()+"/v1.0/$metadata#users('"+g.target.ID+"')/messages('"+m.ImmutableID+"')/attachments", &buf, nil)
		return
	}
	var att *Attachment
	for _, a := range m.Attachments {
		if a.ID == nodes[0].key {
			att = a
		}
	}
	if att == nil {
		errItemNotFound(g.w, g.r)
		return
	}
	switch {
	case len(nodes) == 1:
		writeJSON(g.w, http.StatusOK, attachmentJSON(att))
	case len(nodes) == 2 && nodes[1].name == "$value":
		g.w.Header().Set("Content-Type", att.ContentType)
		g.w.Header().Set("Content-Length", strconv.Itoa(len(att.Content)))
		g.w.WriteHeader(http.StatusOK)
		_, _ = g.w.Write(att.Content)
	default:
		errResourceNotFound(g.w, g.r)
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// attachmentJSON renders a file attachment (docs/graph.md#attachments).
func attachmentJSON(a *Attachment) map[string]any {
	return map[string]any{
		"@odata.type":             "#microsoft.graph.fileAttachment", // exact string the SDK needs (docs/graph.md#attachments)
		"@odata.mediaContentType": a.ContentType,
		"id":                      a.ID,
		"lastModifiedDateTime":    graphTime(a.Modified),
		"name":                    a.Name,
		"contentType":             a.ContentType,
		"size":                    len(a.Content),
		"isInline":                a.IsInline,
		"contentId":               nilIfEmpty(a.ContentID),
		"contentLocation":         nil,
		"contentBytes":            base64.StdEncoding.EncodeToString(a.Content),
	}
}
