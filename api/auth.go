package api

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/internal/lookupcache"
	"github.com/outlookd/outlookd/store"
)

// UserHeader carries the app user a request acts for.
const UserHeader = "Outlookd-User"

// caller is who makes a request: the key's organisation, whether the key
// is an admin key, and the acting app user.
type caller struct {
	Org   store.Org
	Admin bool
	User  string
}

const callerKey = "outlookd.caller"

func callerOf(c *gin.Context) caller { return c.MustGet(callerKey).(caller) }

// KeyLookup finds a stored API key by its ID.
type KeyLookup func(ctx context.Context, id string) (store.APIKey, error)

// authenticator checks API keys and applies a rate limit per key. Keys are
// cached briefly, found or not, so a request costs no database round trip
// and a client retrying with a revoked or mistyped key costs one lookup per
// TTL, however fast it sends; concurrent misses on one key share a lookup.
type authenticator struct {
	keys  *lookupcache.Cache[store.APIKey]
	rps   float64
	burst int

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
}

const (
	// keyCacheTTL bounds how long a revoked key keeps working, and how
	// long a new key whose ID was tried before it existed stays unknown.
	keyCacheTTL = 10 * time.Second
	// keyCacheSize bounds the cache, which unknown IDs also enter.
	keyCacheSize = 10000
)

func newAuthenticator(lookup KeyLookup, rps float64, burst int) *authenticator {
	keys := lookupcache.New(lookup, lookupcache.Options{Size: keyCacheSize, TTL: keyCacheTTL, Missing: store.ErrNotFound})
	return &authenticator{keys: keys, rps: rps, burst: burst, limiters: map[string]*rate.Limiter{}}
}

func (a *authenticator) middleware(c *gin.Context) {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok {
		c.Header("WWW-Authenticate", `Bearer realm="outlookd"`)
		problem(c, http.StatusUnauthorized, "unauthenticated", "Send an API key as 'Authorization: Bearer olk_...'.")
		return
	}
	id, secret, ok := apikey.Split(strings.TrimSpace(token))
	if !ok {
		problem(c, http.StatusUnauthorized, "invalid_api_key", "The API key is malformed, unknown or revoked.")
		return
	}
	key, err := a.keys.Get(c, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !apikey.Matches(secret, key.SecretHash)) {
		problem(c, http.StatusUnauthorized, "invalid_api_key", "The API key is malformed, unknown or revoked.")
		return
	}
	if err != nil {
		problem(c, http.StatusServiceUnavailable, "unavailable", "The key could not be checked right now; retry shortly.")
		return
	}
	if lim := a.limiter(id); !lim.Allow() {
		wait := lim.Reserve()
		delay := wait.Delay()
		wait.Cancel()
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(max(delay.Seconds(), 1)))))
		problem(c, http.StatusTooManyRequests, "rate_limited", "This API key is sending requests too fast; slow down and retry after the Retry-After delay.")
		return
	}
	user := strings.TrimSpace(c.GetHeader(UserHeader))
	if len(user) > 256 {
		problem(c, http.StatusBadRequest, "invalid_user", "The "+UserHeader+" header is longer than 256 characters.")
		return
	}
	if user == "" && !key.Admin {
		problem(c, http.StatusBadRequest, "user_required", "Name the app user the request acts for in the "+UserHeader+" header.")
		return
	}
	c.Set(callerKey, caller{Org: key.Org, Admin: key.Admin, User: user})
	c.Next()
}

func (a *authenticator) limiter(id string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.limiters[id]
	if !ok {
		l = rate.NewLimiter(rate.Limit(a.rps), a.burst)
		a.limiters[id] = l
	}
	return l
}
