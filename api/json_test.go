package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// TestProblemsArePlainJSON: a problem's text keeps '&', '<' and '>' as
// they are, with its content type.
func TestProblemsArePlainJSON(t *testing.T) {
	gin.SetMode(gin.TestMode)
	rec := httptest.NewRecorder()
	c, _ := gin.CreateTestContext(rec)
	problem(c, http.StatusBadRequest, "invalid_query", "Use a=1&b=<2>.")
	body := rec.Body.String()
	if rec.Code != 400 || !strings.Contains(body, "Use a=1&b=<2>.") || strings.Contains(body, `\u0026`) {
		t.Errorf("problem: %d %s", rec.Code, body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("content type %q", ct)
	}
	if !c.IsAborted() {
		t.Error("the chain goes on after a problem")
	}
}
