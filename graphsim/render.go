package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// graphTime formats timestamps as Graph does: UTC with a Z (docs/graph.md#message-properties).
func graphTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// renderOpts says how to render a message for one request.
type renderOpts struct {
	immutable bool   // Prefer: IdType="ImmutableId"
	bodyPref  string // Prefer: outlook.body-content-type="text" or "html"; "" for none
	delta     bool   // delta items carry @odata.type
	basic     bool   // Mail.ReadBasic only: no body or preview
	// expand is $expand=attachments[($select=...)]: nil for none; an
	// empty list for every property.
	expand []string
	// extProps are the extended properties $expand asked for.
	extProps []extPropID
}

// attachmentFields are the attachment properties $expand can select.
var attachmentFields = []string{"id", "name", "contentType", "size", "isInline", "lastModifiedDateTime", "contentId", "contentBytes"}

// parseExpand accepts $expand=attachments and
// $expand=attachments($select=id,name,...), the forms Graph offers for
// messages (docs/graph.md#delta-queries: delta supports $expand).
func parseExpand(raw string) ([]string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	name, rest, _ := strings.Cut(raw, "(")
	if !strings.EqualFold(strings.TrimSpace(name), "attachments") {
		return nil, fmt.Errorf("Parsing OData Select and Expand failed: Could not find a property named '%s' on type 'microsoft.graph.message'.", name)
	}
	if rest == "" {
		return []string{}, nil
	}
	inner := strings.TrimSuffix(rest, ")")
	sel, ok := strings.CutPrefix(inner, "$select=")
	if !ok {
		return nil, fmt.Errorf("Only $select is supported inside $expand=attachments(...).")
	}
	out := []string{}
	for f := range strings.SplitSeq(sel, ",") {
		f = strings.TrimSpace(f)
		i := slices.IndexFunc(attachmentFields, func(a string) bool { return strings.EqualFold(a, f) })
		if i < 0 {
			return nil, fmt.Errorf("Could not find a property named '%s' on type 'microsoft.graph.attachment'.", f)
		}
		out = append(out, attachmentFields[i])
	}
	return out, nil
}

func writeAttachments(buf *bytes.Buffer, m *Message, fields []string) {
	buf.WriteString(`,"attachments":[`)
	for i, a := range m.Attachments {
		if i > 0 {
			buf.WriteByte(',')
		}
		all := map[string]any{
			"id": a.ID, "name": a.Name, "contentType": a.ContentType, "size": len(a.Content), "isInline": a.IsInline,
			"lastModifiedDateTime": graphTime(a.Modified), "contentId": nilIfEmpty(a.ContentID),
			"contentBytes": base64.StdEncoding.EncodeToString(a.Content),
		}
		buf.WriteString(`{"@odata.type":"#microsoft.graph.fileAttachment"`)
		names := fields
		if len(names) == 0 {
			names = attachmentFields
		}
		for _, n := range names {
			buf.WriteString(`,"` + n + `":`)
			writeValue(buf, all[n])
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
}

// messageField renders one property.
type messageField struct {
	name   string
	basic  bool // readable with Mail.ReadBasic
	render func(m *Message, o renderOpts) any
}

func recipients(rs []Recipient) []map[string]Recipient {
	out := make([]map[string]Recipient, len(rs))
	for i, r := range rs {
		out[i] = map[string]Recipient{"emailAddress": r}
	}
	return out
}

func (o renderOpts) id(m *Message) string {
	if o.immutable {
		return m.ImmutableID
	}
	return m.restID
}

// messageFields lists the message properties in Graph's order
// (docs/graph.md#message-properties).
var messageFields = []messageField{
	{"createdDateTime", true, func(m *Message, _ renderOpts) any { return graphTime(m.Created) }},
	{"lastModifiedDateTime", true, func(m *Message, _ renderOpts) any { return graphTime(m.LastModified) }},
	{"changeKey", true, func(m *Message, _ renderOpts) any { return m.ChangeKey }},
	{"categories", true, func(m *Message, _ renderOpts) any {
		if m.Categories == nil {
			return []string{}
		}
		return m.Categories
	}},
	{"receivedDateTime", true, func(m *Message, _ renderOpts) any { return graphTime(m.Received) }},
	{"sentDateTime", true, func(m *Message, _ renderOpts) any { return graphTime(m.Sent) }},
	{"hasAttachments", true, func(m *Message, _ renderOpts) any { return m.HasAttachments() }},
	{"internetMessageId", true, func(m *Message, _ renderOpts) any { return m.InternetMessageID }},
	{"subject", true, func(m *Message, _ renderOpts) any { return m.Subject }},
	{"bodyPreview", false, func(m *Message, _ renderOpts) any { return m.BodyPreview }},
	{"importance", true, func(m *Message, _ renderOpts) any { return m.Importance }},
	{"parentFolderId", true, func(m *Message, _ renderOpts) any { return m.FolderID }},
	{"conversationId", true, func(m *Message, _ renderOpts) any { return m.ConversationID }},
	{"conversationIndex", true, func(m *Message, _ renderOpts) any { return m.ConversationIndex }},
	{"isDeliveryReceiptRequested", true, func(m *Message, _ renderOpts) any { return false }},
	{"isReadReceiptRequested", true, func(m *Message, _ renderOpts) any { return false }},
	{"isRead", true, func(m *Message, _ renderOpts) any { return m.IsRead }},
	{"isDraft", true, func(m *Message, _ renderOpts) any { return m.IsDraft }},
	{"webLink", true, func(m *Message, o renderOpts) any {
		return "https://outlook.office365.com/owa/?ItemID=" + strings.ReplaceAll(o.id(m), "=", "%3D") + "&exvsurl=1&viewmodel=ReadMessageItem"
	}},
	{"inferenceClassification", true, func(m *Message, _ renderOpts) any { return m.Inference }},
	{"body", false, func(m *Message, o renderOpts) any {
		if o.bodyPref == "text" && m.BodyContentType == "html" {
			return map[string]string{"contentType": "text", "content": strings.TrimSpace(stripTags(m.Body))}
		}
		return map[string]string{"contentType": m.BodyContentType, "content": m.Body}
	}},
	{"sender", true, func(m *Message, _ renderOpts) any { return map[string]Recipient{"emailAddress": m.Sender} }},
	{"from", true, func(m *Message, _ renderOpts) any { return map[string]Recipient{"emailAddress": m.From} }},
	{"toRecipients", true, func(m *Message, _ renderOpts) any { return recipients(m.To) }},
	{"ccRecipients", true, func(m *Message, _ renderOpts) any { return recipients(m.Cc) }},
	{"bccRecipients", true, func(m *Message, _ renderOpts) any { return recipients(m.Bcc) }},
	{"replyTo", true, func(m *Message, _ renderOpts) any { return recipients(m.ReplyTo) }},
	{"flag", true, func(m *Message, _ renderOpts) any { return map[string]string{"flagStatus": m.Flag} }},
}

var messageFieldIndex = func() map[string]int {
	idx := map[string]int{}
	for i, f := range messageFields {
		idx[strings.ToLower(f.name)] = i
	}
	return idx
}()

// selection is a parsed $select: nil means every default property.
type selection []int

func parseSelect(raw string) (selection, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	sel := selection{}
	for p := range strings.SplitSeq(raw, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "id" || p == "" {
			continue
		}
		i, ok := messageFieldIndex[p]
		if !ok {
			return nil, fmt.Errorf("Could not find a property named '%s' on type 'microsoft.graph.message'.", strings.TrimSpace(p))
		}
		sel = append(sel, i)
	}
	return sel, nil
}

// writeMessage appends a message object to buf.
func writeMessage(buf *bytes.Buffer, m *Message, sel selection, o renderOpts) {
	buf.WriteByte('{')
	if o.delta {
		buf.WriteString(`"@odata.type":"#microsoft.graph.message",`)
	}
	fmt.Fprintf(buf, `"@odata.etag":"W/\"%s\"","id":`, m.ChangeKey)
	writeValue(buf, o.id(m))
	emit := func(f messageField) {
		if o.basic && !f.basic {
			return
		}
		buf.WriteString(`,"`)
		buf.WriteString(f.name)
		buf.WriteString(`":`)
		writeValue(buf, f.render(m, o))
	}
	if sel == nil {
		for _, f := range messageFields {
			emit(f)
		}
	} else {
		for _, i := range sel {
			emit(messageFields[i])
		}
	}
	if o.expand != nil && !o.basic {
		writeAttachments(buf, m, o.expand)
	}
	if len(o.extProps) > 0 {
		writeExtProps(buf, m, o.extProps)
	}
	buf.WriteByte('}')
}

func writeValue(buf *bytes.Buffer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		buf.WriteString("null")
		return
	}
	buf.Write(b)
}

// writeRemoved appends a delta tombstone (docs/graph.md#delta-queries).
func writeRemoved(buf *bytes.Buffer, id string) {
	buf.WriteString(`{"@odata.type":"#microsoft.graph.message","id":`)
	writeValue(buf, id)
	buf.WriteString(`,"@removed":{"reason":"deleted"}}`)
}

// writeCollection writes {"@odata.context", value, nextLink|deltaLink}.
func writeCollection(w http.ResponseWriter, context string, items *bytes.Buffer, links map[string]string) {
	var out bytes.Buffer
	out.Grow(items.Len() + 256)
	out.WriteString(`{"@odata.context":`)
	writeValue(&out, context)
	for _, k := range []string{"@odata.nextLink", "@odata.deltaLink"} {
		if v, ok := links[k]; ok {
			out.WriteString(`,"` + k + `":`)
			writeValue(&out, v)
		}
	}
	out.WriteString(`,"value":[`)
	out.Write(items.Bytes())
	out.WriteString(`]}`)
	writeRawJSON(w, http.StatusOK, out.Bytes())
}

// segmentNames are the path segments graphsim serves, as Graph writes them
// in context URLs.
var segmentNames = map[string]string{"mailfolders": "mailFolders", "childfolders": "childFolders", "messages": "messages", "attachments": "attachments"}

// odataKey writes a key for a context URL as Graph does: quotes doubled,
// then every byte but letters, digits and -._~ percent-encoded
// ('ada%40contoso.com', 'AAMk...%3D'; docs/graph.md#listing-messages).
func odataKey(k string) string {
	k = strings.ReplaceAll(k, "'", "''")
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// contextPath writes a request's path (after the user) for a context URL:
// segment names in Graph's case, with the keys of every segment but the
// last; entity reports that the last segment is keyed, an entity rather
// than a collection (docs/graph.md#listing-messages).
func contextPath(nodes []node) (path string, entity bool) {
	var b strings.Builder
	for i, n := range nodes {
		name, ok := segmentNames[n.name]
		if !ok {
			name = n.name
		}
		b.WriteString("/" + name)
		if n.keyed && i < len(nodes)-1 {
			b.WriteString("('" + odataKey(n.key) + "')")
		}
	}
	return b.String(), len(nodes) > 0 && nodes[len(nodes)-1].keyed
}

// selectList writes $select for a context URL: "(a,b)" with each
// property named as the model names it, in the order asked, or "" without
// $select (docs/graph.md#listing-messages).
func selectList(raw string, names []string) string {
	if strings.TrimSpace(raw) == "" {
		return ""
	}
	var out []string
	for p := range strings.SplitSeq(raw, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if i := slices.IndexFunc(names, func(n string) bool { return strings.EqualFold(n, p) }); i >= 0 {
			p = names[i]
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return ""
	}
	return "(" + strings.Join(out, ",") + ")"
}

// messageNames are the message properties $select may name.
var messageNames = func() []string {
	out := []string{"id"}
	for _, f := range messageFields {
		out = append(out, f.name)
	}
	return out
}()

// folderNames are the mail folder properties graphsim writes (docs/graph.md#mail-folders).
var folderNames = []string{"id", "displayName", "parentFolderId", "childFolderCount", "unreadItemCount", "totalItemCount", "sizeInBytes", "isHidden"}
