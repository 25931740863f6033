package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

// openStore opens another pool on dsn: a process of its own, as far as
// the budget can tell.
func openStore(t *testing.T, dsn string, maxConns int32) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, maxConns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func TestGraphSlotsHoldNoMoreThanTheLimit(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	const slots = 4
	var held []store.GraphLease
	for range slots {
		l, ok, err := st.AcquireGraphSlot(ctx, "mailbox:m", slots, time.Minute)
		if err != nil || !ok {
			t.Fatalf("slot %d: %v %v", len(held), ok, err)
		}
		held = append(held, l)
	}
	seen := map[int]bool{}
	for _, l := range held {
		if l.Slot < 0 || l.Slot >= slots || seen[l.Slot] {
			t.Fatalf("slots %+v", held)
		}
		seen[l.Slot] = true
	}
	if _, ok, err := st.AcquireGraphSlot(ctx, "mailbox:m", slots, time.Minute); err != nil || ok {
		t.Fatalf("a fifth slot: %v %v", ok, err)
	}
	// Another key has its own slots.
	if _, ok, err := st.AcquireGraphSlot(ctx, "mailbox:other", slots, time.Minute); err != nil || !ok {
		t.Fatalf("another mailbox: %v %v", ok, err)
	}
	if err := st.ReleaseGraphSlot(ctx, held[2]); err != nil {
		t.Fatal(err)
	}
	l, ok, err := st.AcquireGraphSlot(ctx, "mailbox:m", slots, time.Minute)
	if err != nil || !ok || l.Slot != held[2].Slot {
		t.Fatalf("after a release: %+v %v %v", l, ok, err)
	}
}

func TestGraphSlotsExpiredLeaseIsReclaimed(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	old, ok, err := st.AcquireGraphSlot(ctx, "mailbox:m", 1, 50*time.Millisecond)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, ok, _ := st.AcquireGraphSlot(ctx, "mailbox:m", 1, time.Minute); ok {
		t.Fatal("a held slot was given twice")
	}
	time.Sleep(100 * time.Millisecond) // the holder died: its lease runs out
	l, ok, err := st.AcquireGraphSlot(ctx, "mailbox:m", 1, time.Minute)
	if err != nil || !ok || l.Holder == old.Holder {
		t.Fatalf("expired lease not reclaimed: %+v %v %v", l, ok, err)
	}
	// The old holder's late renewal and release leave the new lease alone.
	if renewed, err := st.ExtendGraphSlot(ctx, old, time.Minute); err != nil || renewed {
		t.Fatalf("an expired lease was renewed: %v %v", renewed, err)
	}
	if err := st.ReleaseGraphSlot(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.AcquireGraphSlot(ctx, "mailbox:m", 1, time.Minute); ok {
		t.Fatal("a stale release freed the new holder's slot")
	}
	// A renewed lease outlives its first term.
	short, ok, err := st.AcquireGraphSlot(ctx, "mailbox:renewed", 1, 100*time.Millisecond)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if renewed, err := st.ExtendGraphSlot(ctx, short, time.Minute); err != nil || !renewed {
		t.Fatal(renewed, err)
	}
	time.Sleep(150 * time.Millisecond)
	if _, ok, _ := st.AcquireGraphSlot(ctx, "mailbox:renewed", 1, time.Minute); ok {
		t.Fatal("a renewed lease was reclaimed")
	}
}

// Many callers over several pools (standing for processes) racing for the
// slots of one key never hold more than the limit at once.
func TestGraphSlotsUnderContention(t *testing.T) {
	dsn := testenv.Postgres(t)
	const slots, pools, callers, rounds = 4, 3, 8, 25
	var inflight, peak, taken atomic.Int64
	var wg sync.WaitGroup
	for p := range pools {
		st := openStore(t, dsn, 6)
		for range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for range rounds {
					l, ok, err := st.AcquireGraphSlot(ctx, "mailbox:hot", slots, time.Minute)
					if err != nil {
						t.Errorf("pool %d: %v", p, err)
						return
					}
					if !ok {
						time.Sleep(time.Millisecond)
						continue
					}
					n := inflight.Add(1)
					for cur := peak.Load(); n > cur && !peak.CompareAndSwap(cur, n); cur = peak.Load() {
					}
					taken.Add(1)
					time.Sleep(2 * time.Millisecond)
					inflight.Add(-1)
					if err := st.ReleaseGraphSlot(ctx, l); err != nil {
						t.Errorf("pool %d: %v", p, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if peak.Load() > slots || taken.Load() == 0 {
		t.Fatalf("peak %d held (limit %d), %d taken", peak.Load(), slots, taken.Load())
	}
	t.Logf("%d slots taken, peak %d", taken.Load(), peak.Load())
}

func TestGraphTokens(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		rate  store.GraphRate
		takes int
		// the wait the last take is told, within a tolerance
		wantWait time.Duration
	}{
		{"within the burst: no wait", store.GraphRate{PerSecond: 10, Burst: 5}, 5, 0},
		{"one past the burst: a tenth of a second", store.GraphRate{PerSecond: 10, Burst: 5}, 6, 100 * time.Millisecond},
		{"ten past the burst: queued behind the others", store.GraphRate{PerSecond: 10, Burst: 5}, 15, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newStore(t)
			var wait time.Duration
			for i := range tc.takes {
				var err error
				if wait, err = st.TakeGraphToken(ctx, "mailbox:m", tc.rate); err != nil {
					t.Fatal(err)
				}
				if i < tc.rate.Burst && wait != 0 {
					t.Fatalf("take %d within the burst waits %s", i, wait)
				}
			}
			// The statements themselves take time, which refills a little.
			if wait > tc.wantWait || wait < tc.wantWait-tc.wantWait/5-5*time.Millisecond {
				t.Fatalf("the last take waits %s, want about %s", wait, tc.wantWait)
			}
		})
	}
}

func TestGraphTokensReturnedAndRefilled(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	r := store.GraphRate{PerSecond: 20, Burst: 2}
	for range 2 {
		if w, err := st.TakeGraphToken(ctx, "k", r); err != nil || w != 0 {
			t.Fatal(w, err)
		}
	}
	w, err := st.TakeGraphToken(ctx, "k", r)
	if err != nil || w <= 0 {
		t.Fatal("an empty bucket gave a token at once", w, err)
	}
	if err := st.ReturnGraphToken(ctx, "k", r); err != nil {
		t.Fatal(err)
	}
	// Returned: the next caller waits no longer than one token's refill.
	if w, err := st.TakeGraphToken(ctx, "k", r); err != nil || w > 50*time.Millisecond {
		t.Fatal("the returned token was not given back", w, err)
	}
	time.Sleep(200 * time.Millisecond) // refills both, and no more than the burst
	for i := range 3 {
		w, err := st.TakeGraphToken(ctx, "k", r)
		if err != nil || (i < 2) != (w == 0) {
			t.Fatalf("take %d after the refill waits %s (%v)", i, w, err)
		}
	}
}

// Three pools sharing one bucket are given the burst between them, not
// once each.
func TestGraphTokensSharedAcrossPools(t *testing.T) {
	dsn := testenv.Postgres(t)
	r := store.GraphRate{PerSecond: 1, Burst: 30}
	var free atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		st := openStore(t, dsn, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 10 {
					w, err := st.TakeGraphToken(context.Background(), "mailbox:shared", r)
					if err != nil {
						t.Error(err)
						return
					}
					if w == 0 {
						free.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	// 120 takes over about a second refill a token or two beyond the 30.
	if n := free.Load(); n < 30 || n > 33 {
		t.Fatalf("%d of 120 takes went at once, want the burst of 30", n)
	}
}

func TestGraphTokenAndSlotInOneStatement(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	r := store.GraphRate{PerSecond: 1, Burst: 3}
	count := func() (n int) {
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM graph_slots WHERE key = 'k'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A token and a free slot: both taken.
	l, held, wait, err := st.TakeGraphTokenAndSlot(ctx, "k", r, 2, time.Minute)
	if err != nil || !held || wait != 0 || count() != 1 {
		t.Fatalf("first: %+v %v %s %v, %d held", l, held, wait, err, count())
	}
	if _, held, _, _ := st.TakeGraphTokenAndSlot(ctx, "k", r, 2, time.Minute); !held || count() != 2 {
		t.Fatalf("second: %v, %d held", held, count())
	}
	// A token but no free slot: the token is spent, no slot taken.
	if _, held, wait, err := st.TakeGraphTokenAndSlot(ctx, "k", r, 2, time.Minute); err != nil || held || wait != 0 || count() != 2 {
		t.Fatalf("slots full: %v %s %v, %d held", held, wait, err, count())
	}
	// No token: a wait of about a second, and no slot although one is free.
	if err := st.ReleaseGraphSlot(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, held, wait, err := st.TakeGraphTokenAndSlot(ctx, "k", r, 2, time.Minute); err != nil || held || wait < 900*time.Millisecond || wait > time.Second || count() != 1 {
		t.Fatalf("bucket empty: %v %s %v, %d held", held, wait, err, count())
	}
}

// Tokens taken in a batch are counted at once: a batch within the bucket
// waits for nothing, the next one for the refill of what it lacks, and a
// batch beyond the burst is refused.
func TestGraphTokensInBatches(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	r := store.GraphRate{PerSecond: 100, Burst: 50}
	if w, err := st.TakeGraphTokens(ctx, "app:x", r, 30); err != nil || w != 0 {
		t.Fatal("a batch within a full bucket waits", w, err)
	}
	// 20 left: 30 more lack 10, a tenth of a second's refill.
	w, err := st.TakeGraphTokens(ctx, "app:x", r, 30)
	if err != nil || w < 80*time.Millisecond || w > 100*time.Millisecond {
		t.Fatalf("a batch 10 tokens short waits %s (%v), want about 100 ms", w, err)
	}
	// A single token now queues behind the batch.
	if w2, err := st.TakeGraphToken(ctx, "app:x", r); err != nil || w2 <= w {
		t.Fatalf("a token after the batch waits %s (%v), want more than the batch's %s", w2, err, w)
	}
	for _, n := range []int{0, 51} {
		if _, err := st.TakeGraphTokens(ctx, "app:x", r, n); err == nil {
			t.Fatalf("a batch of %d with a burst of 50 was taken", n)
		}
	}
}

// A hold takes every slot of a key or none: no slot is given while it
// lasts, it is not taken while any slot is held, a lapsed one is reclaimed
// slot by slot, and its late renewal says it was lost.
func TestGraphHold(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	const slots = 4
	h, ok, err := st.HoldGraphSlots(ctx, "mailbox:held", slots, time.Minute)
	if err != nil || !ok || h.Slots != slots {
		t.Fatalf("hold: %+v %v %v", h, ok, err)
	}
	if _, ok, _ := st.AcquireGraphSlot(ctx, "mailbox:held", slots, time.Minute); ok {
		t.Fatal("a slot was given while the key was held")
	}
	if _, ok, _ := st.HoldGraphSlots(ctx, "mailbox:held", slots, time.Minute); ok {
		t.Fatal("a key was held twice")
	}
	if renewed, err := st.ExtendGraphHold(ctx, h, time.Minute); err != nil || !renewed {
		t.Fatalf("renewal: %v %v", renewed, err)
	}
	if err := st.ReleaseGraphHold(ctx, h); err != nil {
		t.Fatal(err)
	}
	one, ok, err := st.AcquireGraphSlot(ctx, "mailbox:held", slots, time.Minute)
	if err != nil || !ok {
		t.Fatalf("a slot after the release: %v %v", ok, err)
	}
	if _, ok, _ := st.HoldGraphSlots(ctx, "mailbox:held", slots, time.Minute); ok {
		t.Fatal("a key was held while one of its slots was")
	}
	if err := st.ReleaseGraphSlot(ctx, one); err != nil {
		t.Fatal(err)
	}
	short, ok, err := st.HoldGraphSlots(ctx, "mailbox:held", slots, 50*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("hold again: %v %v", ok, err)
	}
	time.Sleep(100 * time.Millisecond) // the holder died
	if _, ok, _ := st.AcquireGraphSlot(ctx, "mailbox:held", slots, time.Minute); !ok {
		t.Fatal("a lapsed hold's slot was not reclaimed")
	}
	if renewed, err := st.ExtendGraphHold(ctx, short, time.Minute); err != nil || renewed {
		t.Fatalf("a lapsed hold, one of its slots taken, was renewed whole: %v %v", renewed, err)
	}
}

// Holds and single slots racing over several pools never have more than
// the limit under way at once.
func TestGraphHoldUnderContention(t *testing.T) {
	dsn := testenv.Postgres(t)
	const slots, pools, callers, rounds = 4, 3, 6, 20
	var inflight, peak, holds, singles atomic.Int64
	use := func(n int64) {
		v := inflight.Add(n)
		for cur := peak.Load(); v > cur && !peak.CompareAndSwap(cur, v); cur = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		inflight.Add(-n)
	}
	var wg sync.WaitGroup
	for p := range pools {
		st := openStore(t, dsn, 6)
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for range rounds {
					if c%2 == 0 {
						h, ok, err := st.HoldGraphSlots(ctx, "mailbox:contended", slots, time.Minute)
						if err != nil {
							t.Errorf("pool %d: %v", p, err)
							return
						}
						if ok {
							holds.Add(1)
							use(slots)
							if err := st.ReleaseGraphHold(ctx, h); err != nil {
								t.Errorf("pool %d: %v", p, err)
								return
							}
						}
					} else {
						l, ok, err := st.AcquireGraphSlot(ctx, "mailbox:contended", slots, time.Minute)
						if err != nil {
							t.Errorf("pool %d: %v", p, err)
							return
						}
						if ok {
							singles.Add(1)
							use(1)
							if err := st.ReleaseGraphSlot(ctx, l); err != nil {
								t.Errorf("pool %d: %v", p, err)
								return
							}
						}
					}
					time.Sleep(time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	if peak.Load() > slots || holds.Load() == 0 || singles.Load() == 0 {
		t.Fatalf("peak %d under way (limit %d), %d holds, %d single slots", peak.Load(), slots, holds.Load(), singles.Load())
	}
	t.Logf("%d holds and %d single slots, peak %d", holds.Load(), singles.Load(), peak.Load())
}
