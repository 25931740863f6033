package graphsim

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// ExtProp is a single-value extended property of a message
// (docs/graph.md#extended-properties): its id as the client wrote it, and
// its value, always a string on the wire.
type ExtProp struct {
	ID    string `json:"id"`
	Value string `json:"value"`
}

// extPropID is a parsed extended property id: a MAPI type and either a
// named property (namespace GUID and a Name or a numeric Id) or a property
// tag. Two ids name the same property when their keys are equal.
type extPropID struct {
	typ  string // canonical MAPI type name, e.g. String
	guid string // lower case, without braces; empty for a property tag
	name string // for "Name": case-sensitive
	num  int64  // for "Id" and property tags
	kind string // "name", "id" or "tag"
}

func (p extPropID) key() string {
	return p.typ + "|" + p.kind + "|" + p.guid + "|" + p.name + "|" + strconv.FormatInt(p.num, 16)
}

// singleValueTypes are the MAPI types a single-value extended property can
// have (docs/graph.md#extended-properties), by lower-case name.
var singleValueTypes = func() map[string]string {
	m := map[string]string{}
	for _, t := range []string{"Binary", "Boolean", "CLSID", "Currency", "Double", "Float", "Integer", "Long", "Short", "SystemTime", "String", "Null", "Object"} {
		m[strings.ToLower(t)] = t
	}
	return m
}()

var (
	namedPropID = regexp.MustCompile(`^(\S+) \{([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\} (Name|Id) (.+)$`)
	tagPropID   = regexp.MustCompile(`^(\S+) (0x[0-9A-Fa-f]{1,8})$`)
)

// Exchange's answer to an id it cannot read (observed;
// docs/graph.md#extended-properties).
const (
	extPropErrCode = "ErrorInvalidExtendedProperty"
	extPropErrText = "The extended property attribute combination is invalid."
)

// parseExtPropID reads the three id formats Microsoft documents: "{type}
// {guid} Name {name}", "{type} {guid} Id {id}" and "{type} {proptag}".
// Named properties must have ids in 0x8000-0xfffe, tags in 0x0001-0x7fff.
func parseExtPropID(raw string) (extPropID, bool) {
	var p extPropID
	if m := namedPropID.FindStringSubmatch(raw); m != nil {
		typ, ok := singleValueTypes[strings.ToLower(m[1])]
		if !ok {
			return p, false
		}
		p.typ, p.guid = typ, strings.ToLower(m[2])
		if m[3] == "Name" {
			p.kind, p.name = "name", m[4]
			return p, strings.TrimSpace(m[4]) != ""
		}
		n, err := strconv.ParseInt(strings.TrimPrefix(strings.ToLower(m[4]), "0x"), 16, 64)
		if err != nil || !strings.HasPrefix(strings.ToLower(m[4]), "0x") || n < 0x8000 || n > 0xfffe {
			return p, false
		}
		p.kind, p.num = "id", n
		return p, true
	}
	if m := tagPropID.FindStringSubmatch(raw); m != nil {
		typ, ok := singleValueTypes[strings.ToLower(m[1])]
		if !ok {
			return p, false
		}
		n, err := strconv.ParseInt(m[2][2:], 16, 64)
		if err != nil {
			return p, false
		}
		if n > 0xffff { // a full tag carries the type in its low 16 bits
			n >>= 16
		}
		if n < 1 || n > 0x7fff {
			return p, false
		}
		p.typ, p.kind, p.num = typ, "tag", n
		return p, true
	}
	return p, false
}

// setExtProps validates and stores extended properties on m, replacing a
// property the message already has under the same id.
func setExtProps(m *Message, props []ExtProp) (code, text string) {
	parsed := make([]extPropID, len(props))
	for i, ep := range props {
		p, ok := parseExtPropID(ep.ID)
		if !ok {
			return extPropErrCode, extPropErrText
		}
		parsed[i] = p
	}
	for i, ep := range props {
		k := parsed[i].key()
		replaced := false
		for j := range m.ExtProps {
			if q, _ := parseExtPropID(m.ExtProps[j].ID); q.key() == k {
				m.ExtProps[j].Value, replaced = ep.Value, true
			}
		}
		if !replaced {
			m.ExtProps = append(m.ExtProps, ep)
		}
	}
	return "", ""
}

// extProp returns the message's property with that id, if it has it.
func (m *Message) extProp(p extPropID) (ExtProp, bool) {
	k := p.key()
	for _, ep := range m.ExtProps {
		if q, ok := parseExtPropID(ep.ID); ok && q.key() == k {
			return ep, true
		}
	}
	return ExtProp{}, false
}

// extPropMap is the message's extended properties by id, for ground truth.
func extPropMap(props []ExtProp) map[string]string {
	if len(props) == 0 {
		return nil
	}
	out := make(map[string]string, len(props))
	for _, ep := range props {
		out[ep.ID] = ep.Value
	}
	return out
}

// parseExtPropExpand reads the inner part of
// $expand=singleValueExtendedProperties($filter=id eq '...' [or id eq '...']).
// Microsoft offers no way to expand every extended property of an item.
func parseExtPropExpand(inner string) ([]extPropID, error) {
	f, ok := strings.CutPrefix(strings.TrimSpace(inner), "$filter=")
	if !ok {
		return nil, fmt.Errorf("Expanding singleValueExtendedProperties requires a $filter on id.")
	}
	var out []extPropID
	for _, part := range splitOutside(f, " or ") {
		part = strings.TrimSpace(strings.Trim(strings.TrimSpace(part), "()"))
		fields := strings.SplitN(part, " ", 3)
		if len(fields) != 3 || !strings.EqualFold(fields[0], "id") || !strings.EqualFold(fields[1], "eq") {
			return nil, fmt.Errorf("Invalid filter clause in $expand: %q", part)
		}
		lit, ok := quoted(fields[2])
		if !ok {
			return nil, fmt.Errorf("Invalid filter clause in $expand: %q", part)
		}
		p, ok := parseExtPropID(lit)
		if !ok {
			return nil, errExtProp
		}
		out = append(out, p)
	}
	return out, nil
}

// errExtProp marks an unreadable property id so that callers answer
// Exchange's own code.
var errExtProp = errors.New(extPropErrText)

// writeExtPropsError answers a bad $expand or $filter on extended
// properties with Exchange's code when the id itself is bad.
func writeExtPropsError(g *graphRequest, err error) {
	if err == errExtProp {
		graphError(g.w, g.r, http.StatusBadRequest, extPropErrCode, extPropErrText)
		return
	}
	errBadRequest(g.w, g.r, err.Error())
}

// quoted reads an OData string literal.
func quoted(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '\'' || s[len(s)-1] != '\'' {
		return "", false
	}
	return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), true
}

// splitOutside splits s on sep (case-insensitive) where it stands outside
// quotes and parentheses.
func splitOutside(s, sep string) []string {
	var out []string
	lower := strings.ToLower(s)
	depth, inQuote, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case depth == 0 && strings.HasPrefix(lower[i:], sep):
			out = append(out, s[start:i])
			i += len(sep) - 1
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// extFilter is one singleValueExtendedProperties/any(ep: ...) clause of a
// message $filter (docs/graph.md#extended-properties).
type extFilter struct {
	id    extPropID
	op    string // "", eq, ne, ge, gt, le, lt, contains, startswith
	val   string
	isNum bool // value compared as a number: cast(ep/value, Edm.Int32)
	num   int64
}

var (
	anyLambda   = regexp.MustCompile(`(?is)^singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*(.+)\)$`)
	funcOnValue = regexp.MustCompile(`(?is)^(contains|startswith)\(\s*(\w+)/value\s*,\s*('.*')\s*\)$`)
	castOnValue = regexp.MustCompile(`(?is)^cast\(\s*(\w+)/value\s*,\s*Edm\.(Int32|Int64)\s*\)\s+(eq|ne|ge|gt|le|lt)\s+(-?\d+)$`)
)

// parseExtFilter reads an any() clause; ok is false when clause is not one.
func parseExtFilter(clause string) (f extFilter, ok bool, err error) {
	m := anyLambda.FindStringSubmatch(strings.TrimSpace(clause))
	if m == nil {
		return f, false, nil
	}
	v := m[1]
	parts := splitOutside(m[2], " and ")
	if len(parts) > 2 {
		return f, true, fmt.Errorf("Invalid filter clause: %q", clause)
	}
	idClause := strings.Fields(strings.TrimSpace(parts[0]))
	if len(idClause) < 3 || !strings.EqualFold(idClause[0], v+"/id") || !strings.EqualFold(idClause[1], "eq") {
		return f, true, fmt.Errorf("Invalid filter clause: %q", clause)
	}
	lit, okLit := quoted(strings.Join(idClause[2:], " "))
	if !okLit {
		return f, true, fmt.Errorf("Invalid filter clause: %q", clause)
	}
	if f.id, okLit = parseExtPropID(lit); !okLit {
		return f, true, errExtProp
	}
	if len(parts) == 1 {
		return f, true, nil
	}
	valClause := strings.TrimSpace(parts[1])
	if fm := funcOnValue.FindStringSubmatch(valClause); fm != nil && strings.EqualFold(fm[2], v) {
		f.op = strings.ToLower(fm[1])
		f.val, _ = quoted(fm[3])
		return f, true, nil
	}
	if cm := castOnValue.FindStringSubmatch(valClause); cm != nil && strings.EqualFold(cm[1], v) {
		f.op, f.isNum = strings.ToLower(cm[3]), true
		f.num, _ = strconv.ParseInt(cm[4], 10, 64)
		return f, true, nil
	}
	vf := strings.Fields(valClause)
	if len(vf) >= 3 && strings.EqualFold(vf[0], v+"/value") {
		op := strings.ToLower(vf[1])
		if lit, okv := quoted(strings.Join(vf[2:], " ")); okv && (op == "eq" || op == "ne") {
			f.op, f.val = op, lit
			return f, true, nil
		}
	}
	return f, true, fmt.Errorf("Invalid filter clause: %q", clause)
}

// match tells whether m has the property with a matching value. String
// values compare without regard to case, as Microsoft documents.
func (f extFilter) match(m *Message) bool {
	ep, ok := m.extProp(f.id)
	if !ok {
		return false
	}
	if f.isNum {
		n, err := strconv.ParseInt(strings.TrimSpace(ep.Value), 10, 64)
		if err != nil {
			return false
		}
		switch f.op {
		case "eq":
			return n == f.num
		case "ne":
			return n != f.num
		case "ge":
			return n >= f.num
		case "gt":
			return n > f.num
		case "le":
			return n <= f.num
		}
		return n < f.num
	}
	got, want := strings.ToLower(ep.Value), strings.ToLower(f.val)
	switch f.op {
	case "":
		return true
	case "eq":
		return got == want
	case "ne":
		return got != want
	case "contains":
		return strings.Contains(got, want)
	}
	return strings.HasPrefix(got, want)
}

// writeExtProps appends the expanded properties a request asked for, when
// the message has any of them; Microsoft leaves the key out otherwise.
func writeExtProps(buf *bytes.Buffer, m *Message, ids []extPropID) {
	var found []ExtProp
	for _, id := range ids {
		if ep, ok := m.extProp(id); ok {
			found = append(found, ep)
		}
	}
	if len(found) == 0 {
		return
	}
	buf.WriteString(`,"singleValueExtendedProperties":`)
	writeValue(buf, found)
}

// parseExpandAll reads a message $expand: attachments (see parseExpand)
// and singleValueExtendedProperties($filter=...), separated by commas.
func parseExpandAll(raw string) (att []string, ext []extPropID, err error) {
	for _, part := range splitOutside(raw, ",") {
		part = strings.TrimSpace(part)
		name, rest, _ := strings.Cut(part, "(")
		if !strings.EqualFold(strings.TrimSpace(name), "singleValueExtendedProperties") {
			if att, err = parseExpand(part); err != nil {
				return nil, nil, err
			}
			continue
		}
		if rest == "" {
			return nil, nil, fmt.Errorf("Expanding singleValueExtendedProperties requires a $filter on id.")
		}
		ids, err := parseExtPropExpand(strings.TrimSuffix(rest, ")"))
		if err != nil {
			return nil, nil, err
		}
		ext = append(ext, ids...)
	}
	return att, ext, nil
}
