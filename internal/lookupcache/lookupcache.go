// Package lookupcache remembers a lookup's recent answers: a bounded cache
// whose entries expire, in front of a slower source (the registry), where
// concurrent misses on one key share a single lookup.
package lookupcache

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
	"golang.org/x/sync/singleflight"
)

// Options shape a Cache.
type Options struct {
	// Size bounds the entries kept; the least recently used go first
	// (0: no bound).
	Size int
	// TTL is how long an answer is believed.
	TTL time.Duration
	// Timeout bounds one lookup (default 5 s). It outlives the caller
	// that started it, whose cancellation would otherwise fail every
	// caller sharing it.
	Timeout time.Duration
	// Missing, when set, is the error that means "there is none"; such
	// answers are cached like values. Other errors never are.
	Missing error
}

// Cache answers Get from memory when it can and from its lookup when not.
type Cache[V any] struct {
	lookup func(ctx context.Context, key string) (V, error)
	opts   Options
	lru    *expirable.LRU[string, entry[V]]
	group  singleflight.Group
}

type entry[V any] struct {
	v     V
	found bool
}

// New returns a cache in front of lookup.
func New[V any](lookup func(ctx context.Context, key string) (V, error), opts Options) *Cache[V] {
	opts.Timeout = cmp.Or(opts.Timeout, 5*time.Second)
	return &Cache[V]{lookup: lookup, opts: opts, lru: expirable.NewLRU[string, entry[V]](opts.Size, nil, opts.TTL)}
}

// Get answers the value for key, or the lookup's error (Options.Missing for
// a cached "there is none").
func (c *Cache[V]) Get(ctx context.Context, key string) (V, error) {
	e, ok := c.lru.Get(key)
	if !ok {
		res, err, _ := c.group.Do(key, func() (any, error) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.Timeout)
			defer cancel()
			v, err := c.lookup(ctx, key)
			if err != nil && (c.opts.Missing == nil || !errors.Is(err, c.opts.Missing)) {
				return nil, err
			}
			e := entry[V]{v: v, found: err == nil}
			c.lru.Add(key, e)
			return e, nil
		})
		if err != nil {
			var zero V
			return zero, err
		}
		e = res.(entry[V])
	}
	if !e.found {
		var zero V
		return zero, c.opts.Missing
	}
	return e.v, nil
}

// Len is the number of entries held (expired ones included until swept).
func (c *Cache[V]) Len() int { return c.lru.Len() }
