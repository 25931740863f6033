package graphsim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// graphError writes Graph's error body, always with code and message
// (docs/graph.md#errors: msgraph-sdk-go panics on an error without error.message) and
// an innerError carrying request-id, date and client-request-id.
func graphError(w http.ResponseWriter, r *http.Request, status int, code, message string) {
	body := map[string]any{
		"error": map[string]any{
			"code":    code,
			"message": message,
			"innerError": map[string]any{
				// Graph emits the date without a zone (docs/graph.md#errors).
				"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
				"request-id":        w.Header().Get("request-id"),
				"client-request-id": r.Header.Get("client-request-id"),
			},
		},
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, status, b)
}

func writeRawJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Common Graph errors (docs/graph.md#common-error-codes).
func errItemNotFound(w http.ResponseWriter, r *http.Request) {
	graphError(w, r, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

func errAccessDenied(w http.ResponseWriter, r *http.Request) {
	graphError(w, r, http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
}

func errBadRequest(w http.ResponseWriter, r *http.Request, msg string) {
	graphError(w, r, http.StatusBadRequest, "BadRequest", msg)
}

func errResourceNotFound(w http.ResponseWriter, r *http.Request) {
	graphError(w, r, http.StatusNotFound, "ResourceNotFound", "Resource could not be discovered.")
}
