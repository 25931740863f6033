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

// authenticator checks API keys (cached briefly, so a request costs no
// database round trip) and applies a rate limit per key.
type authenticator struct {
	lookup KeyLookup
	rps    float64
	burst  int

	mu       sync.Mutex
	keys     map[string]cachedKey
	limiters map[string]*rate.Limiter
}

type cachedKey struct {
	key     store.APIKey
	fetched time.Time
}

// keyCacheTTL bounds how long a revoked key keeps working.
const keyCacheTTL = 10 * time.Second

func newAuthenticator(lookup KeyLookup, rps float64, burst int) *authenticator {
	return &authenticator{lookup: lookup, rps: rps, burst: burst, keys: map[string]cachedKey{}, limiters: map[string]*rate.Limiter{}}
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
	key, err := a.key(c, id)
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

func (a *authenticator) key(ctx context.Context, id string) (store.APIKey, error) {
	a.mu.Lock()
	ck, ok := a.keys[id]
	a.mu.Unlock()
	if ok && time.Since(ck.fetched) < keyCacheTTL {
		return ck.key, nil
	}
	k, err := a.lookup(ctx, id)
	if err != nil {
		return k, err
	}
	a.mu.Lock()
	a.keys[id] = cachedKey{key: k, fetched: time.Now()}
	a.mu.Unlock()
	return k, nil
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
