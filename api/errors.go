package api

import (
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
func problem(c *gin.Context, status int, code, detail string) {
	c.Header("Content-Type", "application/problem+json")
	c.AbortWithStatusJSON(status, Problem{
		Type:   "https://outlookd.dev/problems/" + code,
		Title:  titleFor(status),
		Status: status,
		Code:   code,
		Detail: detail,
	})
}

func titleFor(status int) string {
	switch status {
	case 400:
		return "Bad request"
	case 404:
		return "Not found"
	case 405:
		return "Method not allowed"
	case 409:
		return "Conflict"
	case 422:
		return "Unprocessable request"
	case 503:
		return "Service unavailable"
	}
	return "Internal error"
}
