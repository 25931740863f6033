package graphsim

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// filterClause is one comparison of a $filter: prop op value.
type filterClause struct {
	prop string // lower-case property path, e.g. receiveddatetime, from/emailaddress/address
	op   string // eq, ne, ge, gt, le, lt
	val  string // raw literal, quotes removed for strings
	str  bool
	ext  *extFilter // a singleValueExtendedProperties/any(...) clause
	// rcpt is a toRecipients/ccRecipients/bccRecipients/any(...) clause.
	rcpt *recipientFilter
	// or is a parenthesised group of alternatives, each clauses joined by
	// "and": (a or b and c).
	or [][]filterClause
}

// parseFilter parses the subset of OData $filter Graph mail supports in
// practice: comparisons joined by "and", and parenthesised groups of
// alternatives joined by "or".
func parseFilter(raw string) ([]filterClause, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var out []filterClause
	for _, part := range splitOutside(raw, " and ") {
		if inner, ok := parenthesised(part); ok {
			var alts [][]filterClause
			for _, alt := range splitOutside(inner, " or ") {
				cs, err := parseFilter(alt)
				if err != nil {
					return nil, err
				}
				if len(cs) == 0 {
					return nil, fmt.Errorf("Invalid filter clause: %q", part)
				}
				alts = append(alts, cs)
			}
			out = append(out, filterClause{prop: "(or)", or: alts})
			continue
		}
		if len(splitOutside(part, " or ")) > 1 {
			// Without parentheses "a and b or c" would bind as (a and b) or c;
			// graphsim takes "or" only inside parentheses.
			return nil, fmt.Errorf("Invalid filter clause: %q: put alternatives joined by 'or' in parentheses", part)
		}
		if rf, ok, err := parseRecipientFilter(part); ok {
			if err != nil {
				return nil, err
			}
			out = append(out, filterClause{prop: rf.collection, rcpt: &rf})
			continue
		}
		if ef, ok, err := parseExtFilter(part); ok {
			if err != nil {
				return nil, err
			}
			out = append(out, filterClause{prop: "singlevalueextendedproperties", ext: &ef})
			continue
		}
		f := strings.Fields(strings.TrimSpace(part))
		if len(f) < 3 {
			return nil, fmt.Errorf("Invalid filter clause: %q", part)
		}
		c := filterClause{prop: strings.ToLower(f[0]), op: strings.ToLower(f[1]), val: strings.Join(f[2:], " ")}
		switch c.op {
		case "eq", "ne", "ge", "gt", "le", "lt":
		default:
			return nil, fmt.Errorf("Invalid filter operator %q", f[1])
		}
		if strings.HasPrefix(c.val, "'") && strings.HasSuffix(c.val, "'") && len(c.val) >= 2 {
			c.val, c.str = strings.ReplaceAll(c.val[1:len(c.val)-1], "''", "'"), true
		}
		if _, ok := messageFilterProps[c.prop]; !ok {
			return nil, fmt.Errorf("Could not find a property named '%s' on type 'Microsoft.OutlookServices.Message'.", f[0])
		}
		out = append(out, c)
	}
	return out, nil
}

// messageFilterProps are the filterable properties and how to read them.
var messageFilterProps = map[string]func(m *Message) any{
	"receiveddatetime":          func(m *Message) any { return m.Received },
	"sentdatetime":              func(m *Message) any { return m.Sent },
	"lastmodifieddatetime":      func(m *Message) any { return m.LastModified },
	"createddatetime":           func(m *Message) any { return m.Created },
	"isread":                    func(m *Message) any { return m.IsRead },
	"isdraft":                   func(m *Message) any { return m.IsDraft },
	"hasattachments":            func(m *Message) any { return m.HasAttachments() },
	"importance":                func(m *Message) any { return m.Importance },
	"subject":                   func(m *Message) any { return m.Subject },
	"conversationid":            func(m *Message) any { return m.ConversationID },
	"internetmessageid":         func(m *Message) any { return m.InternetMessageID },
	"from/emailaddress/address": func(m *Message) any { return strings.ToLower(m.From.Address) },
	"parentfolderid":            func(m *Message) any { return m.FolderID },
}

// matches evaluates the clauses against a message.
func matches(m *Message, clauses []filterClause) (bool, error) {
	for _, c := range clauses {
		if c.or != nil {
			found := false
			for _, alt := range c.or {
				ok, err := matches(m, alt)
				if err != nil {
					return false, err
				}
				if ok {
					found = true
					break
				}
			}
			if !found {
				return false, nil
			}
			continue
		}
		if c.rcpt != nil {
			if !c.rcpt.match(m) {
				return false, nil
			}
			continue
		}
		if c.ext != nil {
			if !c.ext.match(m) {
				return false, nil
			}
			continue
		}
		ok, err := c.eval(messageFilterProps[c.prop](m))
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (c filterClause) eval(v any) (bool, error) {
	var cmp int
	switch x := v.(type) {
	case time.Time:
		t, err := time.Parse(time.RFC3339Nano, c.val)
		if err != nil {
			return false, fmt.Errorf("The DateTimeOffset text '%s' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range.", c.val)
		}
		cmp = x.Compare(t)
	case bool:
		b, err := strconv.ParseBool(c.val)
		if err != nil {
			return false, fmt.Errorf("A binary operator with incompatible types was detected. Found operand types 'Edm.Boolean' and 'Edm.String' for operator kind 'Equal'.")
		}
		if x == b {
			cmp = 0
		} else if x {
			cmp = 1
		} else {
			cmp = -1
		}
	case string:
		val := c.val
		if c.prop == "from/emailaddress/address" {
			val = strings.ToLower(val)
		}
		cmp = strings.Compare(x, val)
	}
	switch c.op {
	case "eq":
		return cmp == 0, nil
	case "ne":
		return cmp != 0, nil
	case "ge":
		return cmp >= 0, nil
	case "gt":
		return cmp > 0, nil
	case "le":
		return cmp <= 0, nil
	default:
		return cmp < 0, nil
	}
}

// orderKey is one $orderby term.
type orderKey struct {
	prop string
	desc bool
}

func parseOrderBy(raw string) ([]orderKey, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var out []orderKey
	for part := range strings.SplitSeq(raw, ",") {
		f := strings.Fields(part)
		if len(f) == 0 || len(f) > 2 {
			return nil, fmt.Errorf("Invalid $orderby expression %q", raw)
		}
		k := orderKey{prop: strings.ToLower(f[0])}
		if len(f) == 2 {
			switch strings.ToLower(f[1]) {
			case "desc":
				k.desc = true
			case "asc":
			default:
				return nil, fmt.Errorf("Invalid $orderby direction %q", f[1])
			}
		}
		if _, ok := messageFilterProps[k.prop]; !ok {
			return nil, fmt.Errorf("Could not find a property named '%s' on type 'Microsoft.OutlookServices.Message'.", f[0])
		}
		out = append(out, k)
	}
	return out, nil
}

// inefficient applies Graph's rule (docs/graph.md#listing-messages): properties in $orderby must
// also appear in $filter, in the same order, and first.
func inefficient(filter []filterClause, order []orderKey) bool {
	if len(order) == 0 || len(filter) == 0 {
		return false
	}
	if len(filter) < len(order) {
		return true
	}
	for i, o := range order {
		if filter[i].prop != o.prop {
			return true
		}
	}
	return false
}

func compareBy(a, b *Message, keys []orderKey) int {
	for _, k := range keys {
		c := compareValues(messageFilterProps[k.prop](a), messageFilterProps[k.prop](b))
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return strings.Compare(a.ImmutableID, b.ImmutableID)
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case time.Time:
		return x.Compare(b.(time.Time))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case x:
			return 1
		}
		return -1
	case string:
		return strings.Compare(x, b.(string))
	}
	return 0
}

// recipientFilter is a lambda over a recipient collection,
// toRecipients/any(r:r/emailAddress/address eq '...'): the message has a
// recipient of that collection with that address, compared without
// regard to case as Exchange compares SMTP addresses
// (docs/graph.md#filtering-messages-by-address).
type recipientFilter struct {
	collection string // torecipients, ccrecipients or bccrecipients
	address    string // lower case
}

var recipientLambda = regexp.MustCompile(`(?is)^(toRecipients|ccRecipients|bccRecipients)/any\(\s*(\w+)\s*:\s*(\w+)/emailAddress/address\s+eq\s+('(?:[^']|'')*')\s*\)$`)

// parseRecipientFilter reads a recipient lambda; ok says the clause is
// one (a lambda over a recipient collection), err that it is malformed.
func parseRecipientFilter(clause string) (f recipientFilter, ok bool, err error) {
	clause = strings.TrimSpace(clause)
	lower := strings.ToLower(clause)
	if !strings.HasPrefix(lower, "torecipients/") && !strings.HasPrefix(lower, "ccrecipients/") && !strings.HasPrefix(lower, "bccrecipients/") {
		return f, false, nil
	}
	m := recipientLambda.FindStringSubmatch(clause)
	if m == nil || m[2] != m[3] {
		return f, true, fmt.Errorf("Invalid filter clause: %q", clause)
	}
	lit := m[4][1 : len(m[4])-1]
	return recipientFilter{collection: strings.ToLower(m[1]), address: strings.ToLower(strings.ReplaceAll(lit, "''", "'"))}, true, nil
}

func (f recipientFilter) match(m *Message) bool {
	rs := m.To
	switch f.collection {
	case "ccrecipients":
		rs = m.Cc
	case "bccrecipients":
		rs = m.Bcc
	}
	for _, r := range rs {
		if strings.EqualFold(r.Address, f.address) {
			return true
		}
	}
	return false
}

// parenthesised says whether a clause is wholly inside one pair of
// parentheses, and answers what is inside.
func parenthesised(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '(' || s[len(s)-1] != ')' {
		return "", false
	}
	depth, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 && i != len(s)-1 {
				return "", false // "(a) and (b)" is not one group
			}
		}
	}
	return s[1 : len(s)-1], depth == 0
}
