package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// GraphLease is one held slot of a key's Graph concurrency
// (docs/graph.md#throttling): Holder tells this lease from a later one on
// the same slot, so a late release or renewal never touches another
// process's lease.
type GraphLease struct {
	Key    string
	Slot   int
	Holder string
}

// AcquireGraphSlot takes a free slot of key's slots (0 to slots-1) for
// lease, reclaiming one whose lease expired, and reports false when every
// slot is held (or another process took the one it chose at the same
// moment): the caller waits and asks again. No more than slots leases of a
// key are ever unexpired at once, whatever the number of processes.
func (s *Store) AcquireGraphSlot(ctx context.Context, key string, slots int, lease time.Duration) (GraphLease, bool, error) {
	holder, err := newHolder()
	if err != nil {
		return GraphLease{}, false, err
	}
	var slot int
	err = s.pool.QueryRow(ctx, `
		WITH free AS (
			SELECT s FROM generate_series(0, $2::int - 1) AS s
			WHERE NOT EXISTS (SELECT 1 FROM graph_slots g WHERE g.key = $1 AND g.slot = s AND g.expires_at > clock_timestamp())
			ORDER BY random() LIMIT 1
		)
		INSERT INTO graph_slots AS g (key, slot, holder, expires_at)
		SELECT $1, s, $3, clock_timestamp() + $4::bigint * interval '1 microsecond' FROM free
		ON CONFLICT (key, slot) DO UPDATE SET holder = EXCLUDED.holder, expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'
			WHERE g.expires_at <= clock_timestamp()
		RETURNING slot`, key, slots, holder, lease.Microseconds()).Scan(&slot)
	if errors.Is(err, pgx.ErrNoRows) {
		return GraphLease{}, false, nil
	}
	if err != nil {
		return GraphLease{}, false, fmt.Errorf("store: take a Graph slot of %s: %w", key, err)
	}
	return GraphLease{Key: key, Slot: slot, Holder: holder}, true, nil
}

// ExtendGraphSlot renews a held lease for another lease from now, and
// reports false when it had expired and another holder took the slot.
func (s *Store) ExtendGraphSlot(ctx context.Context, l GraphLease, lease time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE graph_slots SET expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'
		WHERE key = $1 AND slot = $2 AND holder = $3`, l.Key, l.Slot, l.Holder, lease.Microseconds())
	if err != nil {
		return false, fmt.Errorf("store: renew Graph slot %d of %s: %w", l.Slot, l.Key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseGraphSlot frees a held slot; a lease that expired and was taken
// by another holder is left to it.
func (s *Store) ReleaseGraphSlot(ctx context.Context, l GraphLease) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM graph_slots WHERE key = $1 AND slot = $2 AND holder = $3`, l.Key, l.Slot, l.Holder); err != nil {
		return fmt.Errorf("store: release Graph slot %d of %s: %w", l.Slot, l.Key, err)
	}
	return nil
}

// GraphRate is a token bucket: Burst tokens at most, refilled at PerSecond.
type GraphRate struct {
	PerSecond float64
	Burst     int
}

// TakeGraphToken reserves one token of key's bucket and says how long the
// caller must wait before using it: zero when the bucket had one, else the
// time the refill takes to cover the reservations before it. A caller that
// does not wait it out gives the token back with ReturnGraphToken. The
// bucket is one row updated in one statement, so every process draws on
// the same budget.
func (s *Store) TakeGraphToken(ctx context.Context, key string, r GraphRate) (time.Duration, error) {
	return s.TakeGraphTokens(ctx, key, r, 1)
}

// TakeGraphTokens is TakeGraphToken for n tokens at once (1 to the
// burst): a process that spends many tokens of one bucket takes them in
// batches, one statement for n requests. The wait is until the last of
// them is covered.
func (s *Store) TakeGraphTokens(ctx context.Context, key string, r GraphRate, n int) (time.Duration, error) {
	if r.PerSecond <= 0 || r.Burst < 1 {
		return 0, fmt.Errorf("store: Graph rate of %s: %v per second, burst %d", key, r.PerSecond, r.Burst)
	}
	if n < 1 || n > r.Burst {
		return 0, fmt.Errorf("store: %d Graph tokens of %s at once, with a burst of %d", n, key, r.Burst)
	}
	// The refill runs from the later of the row's time and this
	// statement's: a statement that waited for the row's lock while
	// another updated it adds nothing for the time it waited.
	var tokens float64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO graph_buckets AS b (key, tokens, updated_at) VALUES ($1, $2::float8 - $4::float8, clock_timestamp())
		ON CONFLICT (key) DO UPDATE SET
			tokens = LEAST($2::float8, b.tokens + $3::float8 * GREATEST(0, extract(epoch FROM EXCLUDED.updated_at - b.updated_at)::float8)) - $4::float8,
			updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
		RETURNING tokens`, key, r.Burst, r.PerSecond, n).Scan(&tokens)
	if err != nil {
		return 0, fmt.Errorf("store: take %d Graph tokens of %s: %w", n, key, err)
	}
	if tokens >= 0 {
		return 0, nil
	}
	return time.Duration(-tokens / r.PerSecond * float64(time.Second)), nil
}

// TakeGraphTokenAndSlot is TakeGraphToken and AcquireGraphSlot in one
// statement, the slot taken only when the token needs no wait: the
// common case costs one round trip. held reports a slot taken; wait > 0
// that the caller must wait out the token before asking for a slot.
func (s *Store) TakeGraphTokenAndSlot(ctx context.Context, key string, r GraphRate, slots int, lease time.Duration) (l GraphLease, held bool, wait time.Duration, err error) {
	if r.PerSecond <= 0 || r.Burst < 1 {
		return GraphLease{}, false, 0, fmt.Errorf("store: Graph rate of %s: %v per second, burst %d", key, r.PerSecond, r.Burst)
	}
	holder, err := newHolder()
	if err != nil {
		return GraphLease{}, false, 0, err
	}
	var tokens float64
	var slot *int
	err = s.pool.QueryRow(ctx, `
		WITH tok AS (
			INSERT INTO graph_buckets AS b (key, tokens, updated_at) VALUES ($1, $2::float8 - 1, clock_timestamp())
			ON CONFLICT (key) DO UPDATE SET
				tokens = LEAST($2::float8, b.tokens + $3::float8 * GREATEST(0, extract(epoch FROM EXCLUDED.updated_at - b.updated_at)::float8)) - 1,
				updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
			RETURNING tokens
		), free AS (
			SELECT s FROM generate_series(0, $4::int - 1) AS s
			WHERE (SELECT tokens FROM tok) >= 0
				AND NOT EXISTS (SELECT 1 FROM graph_slots g WHERE g.key = $1 AND g.slot = s AND g.expires_at > clock_timestamp())
			ORDER BY random() LIMIT 1
		), taken AS (
			INSERT INTO graph_slots AS g (key, slot, holder, expires_at)
			SELECT $1, s, $5, clock_timestamp() + $6::bigint * interval '1 microsecond' FROM free
			ON CONFLICT (key, slot) DO UPDATE SET holder = EXCLUDED.holder, expires_at = clock_timestamp() + $6::bigint * interval '1 microsecond'
				WHERE g.expires_at <= clock_timestamp()
			RETURNING slot
		)
		SELECT (SELECT tokens FROM tok), (SELECT slot FROM taken)`, key, r.Burst, r.PerSecond, slots, holder, lease.Microseconds()).Scan(&tokens, &slot)
	if err != nil {
		return GraphLease{}, false, 0, fmt.Errorf("store: take a Graph token and slot of %s: %w", key, err)
	}
	if tokens < 0 {
		return GraphLease{}, false, time.Duration(-tokens / r.PerSecond * float64(time.Second)), nil
	}
	if slot == nil {
		return GraphLease{}, false, 0, nil
	}
	return GraphLease{Key: key, Slot: *slot, Holder: holder}, true, 0, nil
}

// ReturnGraphToken gives back a token taken by TakeGraphToken and not
// used, up to the bucket's burst.
func (s *Store) ReturnGraphToken(ctx context.Context, key string, r GraphRate) error {
	if _, err := s.pool.Exec(ctx, `UPDATE graph_buckets SET tokens = LEAST($2::float8, tokens + 1) WHERE key = $1`, key, r.Burst); err != nil {
		return fmt.Errorf("store: return a Graph token of %s: %w", key, err)
	}
	return nil
}

func newHolder() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("store: lease holder: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// GraphHold is every slot of a key's Graph concurrency held by one
// holder (HoldGraphSlots).
type GraphHold struct {
	Key    string
	Slots  int
	Holder string
}

// HoldGraphSlots takes every one of key's slots (0 to slots-1) for one
// holder, in one statement, when no other holder has an unexpired lease on
// any of them; it reports false, holding nothing, otherwise (another
// process took one at the same moment included). A caller that is for a
// while the only user of a key, such as a mailbox backfilled ahead of its
// workflow, then spends no statement of the budget per request: no more
// than slots requests are ever under way for the key, since no other
// lease can be taken while the hold lasts.
func (s *Store) HoldGraphSlots(ctx context.Context, key string, slots int, lease time.Duration) (GraphHold, bool, error) {
	holder, err := newHolder()
	if err != nil {
		return GraphHold{}, false, err
	}
	h := GraphHold{Key: key, Slots: slots, Holder: holder}
	var taken int
	err = s.pool.QueryRow(ctx, `
		WITH taken AS (
			INSERT INTO graph_slots AS g (key, slot, holder, expires_at)
			SELECT $1, s, $3, clock_timestamp() + $4::bigint * interval '1 microsecond' FROM generate_series(0, $2::int - 1) AS s
			WHERE NOT EXISTS (SELECT 1 FROM graph_slots o WHERE o.key = $1 AND o.expires_at > clock_timestamp())
			ON CONFLICT (key, slot) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
				WHERE g.expires_at <= clock_timestamp()
			RETURNING slot
		)
		SELECT count(*) FROM taken`, key, slots, holder, lease.Microseconds()).Scan(&taken)
	if err != nil {
		return GraphHold{}, false, fmt.Errorf("store: hold the Graph slots of %s: %w", key, err)
	}
	if taken < slots {
		// Another holder took one meanwhile: give back what was taken.
		if taken > 0 {
			if err := s.ReleaseGraphHold(ctx, h); err != nil {
				return GraphHold{}, false, err
			}
		}
		return GraphHold{}, false, nil
	}
	return h, true, nil
}

// ExtendGraphHold renews every slot of a hold for another lease from now,
// and reports false when any had expired and was taken by another holder.
func (s *Store) ExtendGraphHold(ctx context.Context, h GraphHold, lease time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE graph_slots SET expires_at = clock_timestamp() + $3::bigint * interval '1 microsecond'
		WHERE key = $1 AND holder = $2`, h.Key, h.Holder, lease.Microseconds())
	if err != nil {
		return false, fmt.Errorf("store: renew the Graph hold of %s: %w", h.Key, err)
	}
	return tag.RowsAffected() == int64(h.Slots), nil
}

// ReleaseGraphHold frees every slot of a hold still held by it.
func (s *Store) ReleaseGraphHold(ctx context.Context, h GraphHold) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM graph_slots WHERE key = $1 AND holder = $2`, h.Key, h.Holder); err != nil {
		return fmt.Errorf("store: release the Graph hold of %s: %w", h.Key, err)
	}
	return nil
}
