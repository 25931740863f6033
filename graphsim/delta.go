package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// deltaState is what a $skiptoken or $deltatoken carries. Clients treat it
// as opaque; Graph likewise encodes the original query into it (docs/graph.md#delta-queries).
type deltaState struct {
	Folder string `json:"f"`
	// W is the watermark: changes with a higher sequence are new to the
	// client. H is the sequence the round stops at; C the last one served.
	W, H, C int64
	// N counts items served this round; Top caps the round ($top).
	N, Top int
	Filter string `json:"flt,omitempty"`
	Select string `json:"sel,omitempty"`
	Expand string `json:"exp,omitempty"`
	// Initial marks the first round (no tombstones).
	Initial bool `json:"init,omitempty"`
	Gen     int64
	Issued  int64 `json:"iss"`
}

func encodeDelta(st deltaState) string {
	b, _ := json.Marshal(st)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeDelta(tok string) (deltaState, bool) {
	var st deltaState
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

// syncStateNotFound answers an expired token as Outlook does: 410 with the
// PascalCase code (docs/graph.md#delta-token-expiry) and a Location to start over.
func (s *Sim) syncStateNotFound(g *graphRequest, restart string) {
	g.w.Header().Set("Location", restart)
	graphError(g.w, g.r, http.StatusGone, "SyncStateNotFound", "The sync state generation is not found; generation=149;[highest=157][157][155][156].")
}

// messageDelta serves mailFolders/{id}/messages/delta (docs/graph.md#delta-queries).
func (s *Sim) messageDelta(g *graphRequest, mb *mailbox, f *Folder, o renderOpts, pageSize int) {
	q := g.r.URL.Query()
	now := s.clock.Now()
	base := s.URL() + "/v1.0/" + g.prefix + "/mailFolders('" + url.PathEscape(f.ID) + "')/messages/delta"
	var st deltaState
	switch {
	case q.Get("$skiptoken") != "" || q.Get("$deltatoken") != "":
		tok, isSkip := q.Get("$skiptoken"), true
		if tok == "" {
			tok, isSkip = q.Get("$deltatoken"), false
		}
		var ok bool
		st, ok = decodeDelta(tok)
		if !ok || st.Folder != f.ID {
			graphError(g.w, g.r, http.StatusBadRequest, "ErrorInvalidParameter", "Parameter 'DeltaToken' not supported for this request.")
			return
		}
		if st.Gen != mb.generation || now.Sub(time.Unix(st.Issued, 0)) > s.opts.DeltaTokenMaxAge {
			s.syncStateNotFound(g, base)
			return
		}
		if !isSkip {
			// A new round from the watermark.
			st.H, st.C, st.N, st.Initial, st.Issued = mb.seq, st.W, 0, false, now.Unix()
		}
	default:
		filter := q.Get("$filter")
		if filter != "" {
			fc, err := parseFilter(filter)
			if err != nil || len(fc) != 1 || fc[0].prop != "receiveddatetime" || (fc[0].op != "ge" && fc[0].op != "gt") {
				errBadRequest(g.w, g.r, "The only supported $filter expression for a delta query on messages is receivedDateTime ge|gt {value}.")
				return
			}
		}
		if ob := q.Get("$orderby"); ob != "" && !strings.EqualFold(strings.Join(strings.Fields(ob), " "), "receivedDateTime desc") {
			errBadRequest(g.w, g.r, "The only supported $orderby expression for a delta query on messages is receivedDateTime desc.")
			return
		}
		if _, err := parseSelect(q.Get("$select")); err != nil {
			errBadRequest(g.w, g.r, err.Error())
			return
		}
		st = deltaState{Folder: f.ID, H: mb.seq, Filter: filter, Select: q.Get("$select"), Expand: q.Get("$expand"), Initial: true, Gen: mb.generation, Issued: now.Unix()}
		if v := q.Get("$top"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				graphError(g.w, g.r, http.StatusBadRequest, "ErrorInvalidParameter", "The value '"+v+"' of parameter 'Top' is invalid.")
				return
			}
			st.Top = n
		}
	}
	// $top caps the round, not the page; the page size comes from
	// Prefer: odata.maxpagesize (docs/graph.md#delta-queries).
	size := 10
	if pageSize > 0 {
		size = min(pageSize, 1000)
	}
	filter, _ := parseFilter(st.Filter)
	sel, _ := parseSelect(st.Select)
	o.expand, _ = parseExpand(st.Expand)
	o.delta = true

	var buf bytes.Buffer
	var first *Message
	written := 0
	capped := st.Top > 0 && st.N >= st.Top
	// Entries after max(W, C), up to H, in sequence order.
	from := max(st.W, st.C)
	i, _ := slices.BinarySearchFunc(f.log, from+1, func(e logEntry, seq int64) int { return int(e.seq - seq) })
	for ; i < len(f.log) && !capped && written < size; i++ {
		e := f.log[i]
		if e.seq > st.H {
			break
		}
		st.C = e.seq
		if e.removed {
			if st.Initial {
				continue
			}
			if written > 0 {
				buf.WriteByte(',')
			}
			id := e.id
			if !o.immutable {
				id = e.restID
			}
			writeRemoved(&buf, id)
			written++
			st.N++
		} else {
			m := mb.messages[e.id]
			// Only an entry that is still the message's latest change in
			// this folder counts; later changes have later entries.
			if m == nil || m.FolderID != f.ID || m.seq != e.seq {
				continue
			}
			if ok, _ := matches(m, filter); !ok {
				continue
			}
			if written > 0 {
				buf.WriteByte(',')
			}
			writeMessage(&buf, m, sel, o)
			if first == nil {
				first = m
			}
			written++
			st.N++
		}
		capped = st.Top > 0 && st.N >= st.Top
	}
	// Replays: the first item of the page comes again at its end.
	if first != nil && rand.Float64() < s.faults.duplicateShare() {
		buf.WriteByte(',')
		writeMessage(&buf, first, sel, o)
		s.stats.add("delta.duplicates", 1)
	}
	done := i >= len(f.log) || f.log[i].seq > st.H
	links := map[string]string{}
	switch {
	case capped && written == 0:
		// The round was capped by $top: an empty page and a deltaLink
		// (docs/graph.md#delta-queries); unserved changes stay after the watermark.
		links["@odata.deltaLink"] = base + "?$deltatoken=" + encodeDelta(deltaState{Folder: f.ID, W: st.C, Filter: st.Filter, Select: st.Select, Expand: st.Expand, Gen: mb.generation, Issued: now.Unix()})
	case done && !capped:
		links["@odata.deltaLink"] = base + "?$deltatoken=" + encodeDelta(deltaState{Folder: f.ID, W: st.H, Filter: st.Filter, Select: st.Select, Expand: st.Expand, Gen: mb.generation, Issued: now.Unix()})
	default:
		links["@odata.nextLink"] = base + "?$skiptoken=" + encodeDelta(st)
	}
	preferenceApplied(g.w, o)
	writeCollection(g.w, s.URL()+"/v1.0/$metadata#Collection(message)", &buf, links)
}

// folderDelta serves mailFolders/delta: the whole hierarchy, flattened
// (docs/graph.md#folder-hierarchy-delta). A round returns the folders
// created since the token, and the folders deleted since as @removed.
func (s *Sim) folderDelta(g *graphRequest, mb *mailbox) {
	q := g.r.URL.Query()
	base := s.URL() + "/v1.0/" + g.prefix + "/mailFolders/delta"
	seen := map[string]bool{}
	if tok := q.Get("$deltatoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		var ids []string
		if err != nil || json.Unmarshal(b, &ids) != nil {
			graphError(g.w, g.r, http.StatusBadRequest, "ErrorInvalidParameter", "Parameter 'DeltaToken' not supported for this request.")
			return
		}
		for _, id := range ids {
			seen[id] = true
		}
	}
	var all []*Folder
	for _, f := range mb.folders {
		if f.ID != mb.rootID {
			all = append(all, f)
		}
	}
	slices.SortFunc(all, func(a, b *Folder) int { return strings.Compare(a.ID, b.ID) })
	var buf bytes.Buffer
	ids := make([]string, 0, len(all))
	n := 0
	for _, f := range all {
		ids = append(ids, f.ID)
		if seen[f.ID] {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		fj := folderJSON(mb, f)
		fj["@odata.type"] = "#microsoft.graph.mailFolder"
		writeValue(&buf, fj)
	}
	gone := make([]string, 0)
	for id := range seen {
		if mb.folders[id] == nil {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		if n > 0 {
			buf.WriteByte(',')
		}
		n++
		buf.WriteString(`{"@odata.type":"#microsoft.graph.mailFolder","id":`)
		writeValue(&buf, id)
		buf.WriteString(`,"@removed":{"reason":"deleted"}}`)
	}
	b, _ := json.Marshal(ids)
	links := map[string]string{"@odata.deltaLink": base + "?$deltatoken=" + base64.RawURLEncoding.EncodeToString(b)}
	writeCollection(g.w, s.URL()+"/v1.0/$metadata#Collection(mailFolder)", &buf, links)
}
