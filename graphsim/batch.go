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

// serveBatch serves POST /$batch: up to 20 requests run one after another,
// dependents of a failed request answer 424, and the batch itself answers
// 200 with every item's status, headers and body (docs/graph.md#json-batching).
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
	seen := map[string]bool{}
	for _, it := range req.Requests {
		switch {
		case it.ID == "" || seen[it.ID]:
			errBadRequest(g.w, g.r, "Every request in a batch needs a unique id; '"+it.ID+"' is missing or repeated.")
			return
		case it.Method == "" || it.URL == "" || strings.Contains(it.URL, "://"):
			errBadRequest(g.w, g.r, "Request '"+it.ID+"' needs a method and a relative url.")
			return
		case len(it.Body) > 0 && string(it.Body) != "null" && headerValue(it.Headers, "Content-Type") == "":
			errBadRequest(g.w, g.r, "Request '"+it.ID+"': the Content-Type header is required when a body is present.")
			return
		}
		for _, dep := range it.DependsOn {
			if !seen[dep] {
				errBadRequest(g.w, g.r, "Request '"+it.ID+"' depends on '"+dep+"', which is not an earlier request of the batch.")
				return
			}
		}
		seen[it.ID] = true
	}
	statuses := map[string]int{}
	responses := make([]map[string]any, 0, len(req.Requests))
	for _, it := range req.Requests {
		failedDep := false
		for _, dep := range it.DependsOn {
			if statuses[dep] >= 400 {
				failedDep = true
			}
		}
		if failedDep {
			statuses[it.ID] = http.StatusFailedDependency
			responses = append(responses, map[string]any{"id": it.ID, "status": http.StatusFailedDependency, "headers": map[string]string{"Content-Type": "application/json"},
				"body": map[string]any{"error": map[string]any{"code": "FailedDependency", "message": "The request could not be completed because a request it depends on failed."}}})
			continue
		}
		rec := s.runBatchItem(g, it)
		statuses[it.ID] = rec.Code
		responses = append(responses, batchResponse(it.ID, rec))
	}
	writeJSON(g.w, http.StatusOK, map[string]any{"responses": responses})
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
