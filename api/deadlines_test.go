package api

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// TestDeadlinesCloseSlowBodies: a client that sends headers and then only
// part of the body is cut off once the route's read budget has passed,
// instead of holding the connection open.
func TestDeadlinesCloseSlowBodies(t *testing.T) {
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.Use(deadlines)
	readErr := make(chan error, 1)
	r.POST("/v1/graph/notifications", func(c *gin.Context) {
		_, err := io.ReadAll(c.Request.Body)
		readErr <- err
		c.Status(http.StatusBadRequest)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = io.WriteString(conn, "POST /v1/graph/notifications HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"value\":[")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("the partial body was read without error")
		}
	case <-time.After(NotificationReadBudget + 10*time.Second):
		t.Fatalf("the handler was still reading the partial body after %s", time.Since(start))
	}
	if el := time.Since(start); el < NotificationReadBudget-time.Second {
		t.Errorf("cut off after %s, before the budget of %s", el, NotificationReadBudget)
	}
	// The server answers (or closes) rather than waiting for the rest.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the connection stayed open: %v", err)
		}
	}
}
