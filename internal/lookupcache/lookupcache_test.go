package lookupcache

import (
	"context"
	"errors"
	"testing"
	"time"
)

var (
	errMissing = errors.New("missing")
	errDown    = errors.New("down")
)

// TestGet: which answers are remembered, and what a Get costs the source.
func TestGet(t *testing.T) {
	answers := map[string]error{"here": nil, "gone": errMissing, "broken": errDown}
	for _, tc := range []struct {
		name    string
		missing error
		key     string
		wantErr error
		// calls is what two Gets in a row cost the source.
		calls int
	}{
		{"a value is remembered", errMissing, "here", nil, 1},
		{"a miss is remembered when misses are named", errMissing, "gone", errMissing, 1},
		{"a miss is asked again when misses are not named", nil, "gone", errMissing, 2},
		{"a failure is asked again", errMissing, "broken", errDown, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			c := New(func(ctx context.Context, key string) (string, error) {
				calls++
				if err := ctx.Err(); err != nil {
					t.Errorf("the lookup ran with its caller's cancellation: %v", err)
				}
				if err := answers[key]; err != nil {
					return "", err
				}
				return "value of " + key, nil
			}, Options{Size: 8, TTL: time.Hour, Missing: tc.missing})
			// The caller has given up already; the lookup still runs (under
			// the default timeout, not an expired one).
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			for range 2 {
				v, err := c.Get(ctx, tc.key)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get(%q) error %v, want %v", tc.key, err, tc.wantErr)
				}
				if err == nil && v != "value of "+tc.key {
					t.Fatalf("Get(%q) = %q", tc.key, v)
				}
			}
			if calls != tc.calls {
				t.Errorf("two Gets cost %d lookups, want %d", calls, tc.calls)
			}
		})
	}
}

// TestBounded: entries beyond Size push out the least recently used, and
// entries expire after TTL.
func TestBounded(t *testing.T) {
	calls := map[string]int{}
	c := New(func(_ context.Context, key string) (int, error) {
		calls[key]++
		return len(key), nil
	}, Options{Size: 2, TTL: 50 * time.Millisecond, Timeout: time.Second})
	ctx := context.Background()
	for _, k := range []string{"a", "bb", "a", "ccc", "a"} {
		if _, err := c.Get(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() != 2 {
		t.Errorf("holds %d entries, want 2", c.Len())
	}
	if _, err := c.Get(ctx, "bb"); err != nil {
		t.Fatal(err)
	}
	if calls["a"] != 1 || calls["bb"] != 2 || calls["ccc"] != 1 {
		t.Errorf("lookups %v: want a once, bb twice (pushed out by ccc), ccc once", calls)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := c.Get(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if calls["a"] != 2 {
		t.Errorf("a was looked up %d times, want 2 (its entry expired)", calls["a"])
	}
}
