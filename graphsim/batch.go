package graphsim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
)

// batchLimit is Graph's limit of requests in one $batch (docs/graph.md#json-batching).
const batchLimit = 20

type batchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers"`
	Body      json.RawMessage   `json:"body"`
	DependsOn []string          `json:"dependsOn"`
}

// batchParallel is how many requests of an unordered batch Graph hands
// Outlook at a time (docs/graph.md#json-batching).
const batchParallel = 4

// batchShapeError is Graph's answer to dependsOn that follows none of the
// supported patterns (docs/graph.md#json-batching).
const batchShapeError = "Batch should be either fully sequential or fully parallel."

// serveBatch serves POST /$batch: up to 20 requests, each through the
// ordinary pipeline with its own throttle slot. Without dependsOn up to four
// run at once; with dependsOn they run one at a time, and dependents of a
// failed request answer 424. The batch answers 200 with every item's
// status, headers and body, in the order the items finished
// (docs/graph.md#json-batching).
func (s *Sim) serveBatch(g *graphRequest) {
	if g.r.Method != http.MethodPost {
		graphError(g.w, g.r, http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not supported by this resource.")
		return
	}
	var req struct {
		Requests []batchItem `json:"requests"`
	}
	if err := json.NewDecoder(io.LimitReader(g.r.Body, 80<<20)).Decode(&req); err != nil {
		errBadRequest(g.w, g.r, "Invalid batch payload format.")
		return
	}
	switch {
	case len(req.Requests) == 0:
		errBadRequest(g.w, g.r, "Invalid batch payload format: the batch contains no requests.")
		return
	case len(req.Requests) > batchLimit:
		errBadRequest(g.w, g.r, "The number of requests in the batch exceeds the limit of 20.")
		return
	}
	if msg := checkBatchItems(req.Requests); msg != "" {
		errBadRequest(g.w, g.r, msg)
		return
	}
	serial, ok := batchOrder(req.Requests)
	if !ok {
		errBadRequest(g.w, g.r, batchShapeError)
		return
	}
	var responses []map[string]any
	if serial {
		responses = s.runBatchSerial(g, req.Requests)
	} else {
		responses = s.runBatchParallel(g, req.Requests)
	}
	writeJSON(g.w, http.StatusOK, map[string]any{"responses": responses})
}

// checkBatchItems validates ids, methods, urls, bodies and that every
// dependency names an earlier request; it returns Graph's message or "".
func checkBatchItems(items []batchItem) string {
	seen := map[string]bool{}
	for _, it := range items {
		switch {
		case it.ID == "" || seen[strings.ToLower(it.ID)]:
			// Ids are not case-sensitive (docs/graph.md#json-batching).
			return "Every request in a batch needs a unique id; '" + it.ID + "' is missing or repeated."
		case it.Method == "" || it.URL == "" || strings.Contains(it.URL, "://"):
			return "Request '" + it.ID + "' needs a method and a relative url."
		case len(it.Body) > 0 && string(it.Body) != "null" && headerValue(it.Headers, "Content-Type") == "":
			return "Request '" + it.ID + "': the Content-Type header is required when a body is present."
		}
		for _, dep := range it.DependsOn {
			if !seen[strings.ToLower(dep)] {
				return "Invalid dependency for request Id '" + it.ID + "': '" + dep + "' is not an earlier request of the batch."
			}
		}
		seen[strings.ToLower(it.ID)] = true
	}
	return ""
}

// batchOrder tells how Graph runs a batch: in parallel when no request has
// dependsOn; one at a time for the two dependsOn patterns Graph supports, a
// chain (each request on the one before) and "same" (every dependent on the
// same request). Any other shape, or a request naming more than one
// dependency, is refused (docs/graph.md#json-batching).
func batchOrder(items []batchItem) (serial, ok bool) {
	var common string
	chain, same := true, true
	for i, it := range items {
		switch len(it.DependsOn) {
		case 0:
			if i > 0 {
				chain = false
			}
			continue
		case 1:
		default:
			return false, false
		}
		serial = true
		dep := strings.ToLower(it.DependsOn[0])
		if i == 0 || dep != strings.ToLower(items[i-1].ID) {
			chain = false
		}
		if common == "" {
			common = dep
		}
		if dep != common {
			same = false
		}
	}
	if !serial {
		return false, true
	}
	return true, chain || same
}

// runBatchSerial runs the requests one after another in the batch's order;
// a request whose dependency failed answers 424 without running.
func (s *Sim) runBatchSerial(g *graphRequest, items []batchItem) []map[string]any {
	statuses := map[string]int{}
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		failed := false
		for _, dep := range it.DependsOn {
			if statuses[strings.ToLower(dep)] >= 400 {
				failed = true
			}
		}
		if failed {
			statuses[strings.ToLower(it.ID)] = http.StatusFailedDependency
			out = append(out, failedDependency(it.ID))
			continue
		}
		rec := s.runBatchItem(g, it)
		statuses[strings.ToLower(it.ID)] = rec.Code
		out = append(out, batchResponse(it.ID, rec))
	}
	return out
}

// runBatchParallel runs the requests at most batchParallel at a time, each
// taking its own place in the mailbox's concurrency budget, and lists the
// answers as they come.
func (s *Sim) runBatchParallel(g *graphRequest, items []batchItem) []map[string]any {
	done := make(chan map[string]any)
	slots := make(chan struct{}, batchParallel)
	go func() {
		for _, it := range items {
			slots <- struct{}{}
			go func() {
				defer func() { <-slots }()
				done <- batchResponse(it.ID, s.runBatchItem(g, it))
			}()
		}
	}()
	out := make([]map[string]any, 0, len(items))
	for range items {
		out = append(out, <-done)
	}
	return out
}

func failedDependency(id string) map[string]any {
	return map[string]any{"id": id, "status": http.StatusFailedDependency, "headers": map[string]string{"Content-Type": "application/json"},
		"body": map[string]any{"error": map[string]any{"code": "FailedDependency", "message": "The request could not be completed because a request it depends on failed."}}}
}

func headerValue(h map[string]string, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// runBatchItem serves one item through the ordinary Graph pipeline, with the
// batch's token.
func (s *Sim) runBatchItem(g *graphRequest, it batchItem) *httptest.ResponseRecorder {
	var body io.Reader
	if len(it.Body) > 0 && string(it.Body) != "null" {
		b := []byte(it.Body)
		if ct, _, _ := mime.ParseMediaType(headerValue(it.Headers, "Content-Type")); ct != "application/json" {
			// Non-JSON bodies travel as base64 strings.
			var s string
			if json.Unmarshal(b, &s) == nil {
				if dec, err := base64.StdEncoding.DecodeString(s); err == nil {
					b = dec
				}
			}
		}
		body = bytes.NewReader(b)
	}
	u := it.URL
	if !strings.HasPrefix(u, "/") {
		u = "/" + u
	}
	r := httptest.NewRequestWithContext(g.r.Context(), strings.ToUpper(it.Method), "/v1.0"+u, body)
	for k, v := range it.Headers {
		r.Header.Set(k, v)
	}
	r.Header.Set("Authorization", g.r.Header.Get("Authorization"))
	if body == nil && r.Method == http.MethodPost {
		r.Header.Set("Content-Length", "0")
	}
	rec := httptest.NewRecorder()
	s.serveGraph(rec, r)
	return rec
}

func batchResponse(id string, rec *httptest.ResponseRecorder) map[string]any {
	headers := map[string]string{}
	for k, vs := range rec.Header() {
		if len(vs) > 0 && k != "Content-Length" {
			headers[k] = vs[0]
		}
	}
	resp := map[string]any{"id": id, "status": rec.Code, "headers": headers}
	if b := rec.Body.Bytes(); len(b) > 0 {
		if ct, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); ct == "application/json" {
			resp["body"] = json.RawMessage(b)
		} else {
			resp["body"] = base64.StdEncoding.EncodeToString(b)
		}
	}
	return resp
}
