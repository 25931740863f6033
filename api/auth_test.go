package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/store"
)

// TestAuthenticatorLookups: what the key check costs the registry. A known
// key and an unknown one are each looked up once however often and however
// concurrently they are sent; a failed lookup is not remembered.
func TestAuthenticatorLookups(t *testing.T) {
	gin.SetMode(gin.TestMode)
	known, knownID, hash := apikey.New()
	unknown, unknownID, _ := apikey.New()
	broken, brokenID, _ := apikey.New()
	var (
		mu    sync.Mutex
		calls = map[string]int{}
		gate  chan struct{}
	)
	lookup := func(ctx context.Context, id string) (store.APIKey, error) {
		mu.Lock()
		calls[id]++
		g := gate
		mu.Unlock()
		<-g // held until the burst is in flight
		switch id {
		case knownID:
			return store.APIKey{ID: id, SecretHash: hash, Admin: true}, nil
		case brokenID:
			return store.APIKey{}, errors.New("registry unreachable")
		}
		return store.APIKey{}, store.ErrNotFound
	}
	lookups := func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		return calls[id]
	}
	a := newAuthenticator(lookup, 1e6, 1e6)
	r := gin.New()
	r.GET("/", a.middleware, func(c *gin.Context) { c.Status(http.StatusNoContent) })
	send := func(key string) int {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		return w.Code
	}

	for _, tc := range []struct {
		name    string
		key, id string
		want    int
		// cached: a later request costs no lookup.
		cached bool
	}{
		{"known key", known, knownID, http.StatusNoContent, true},
		{"unknown key", unknown, unknownID, http.StatusUnauthorized, true},
		{"registry down", broken, brokenID, http.StatusServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			gate = make(chan struct{})
			mu.Unlock()
			const concurrent = 50
			codes := make(chan int, concurrent)
			var wg sync.WaitGroup
			for range concurrent {
				wg.Go(func() { codes <- send(tc.key) })
			}
			for lookups(tc.id) == 0 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // let the others join the lookup
			close(gate)
			wg.Wait()
			close(codes)
			for code := range codes {
				if code != tc.want {
					t.Errorf("status %d, want %d", code, tc.want)
				}
			}
			burst := lookups(tc.id)
			if tc.cached && burst != 1 {
				t.Errorf("%d concurrent requests cost %d lookups, want 1", concurrent, burst)
			}
			if code := send(tc.key); code != tc.want {
				t.Errorf("a later request: status %d, want %d", code, tc.want)
			}
			want := burst
			if !tc.cached {
				want++
			}
			if got := lookups(tc.id); got != want {
				t.Errorf("a later request cost %d lookups, want %d", got-burst, want-burst)
			}
		})
	}
}
