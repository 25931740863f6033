package api

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Problem is an RFC 9457 problem details body with a stable machine code.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
}

// problem writes an application/problem+json response and stops the chain.
// Like every answer of the API it is plain JSON: URLs and text keep their
// '&', '<' and '>' (gin's JSON would write \u0026), so what a person copies
// from a terminal works.
func problem(c *gin.Context, status int, code, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.Abort()
	c.PureJSON(status, Problem{
		Type:   "https://outlookd.dev/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Code:   code,
		Detail: detail,
	})
}
