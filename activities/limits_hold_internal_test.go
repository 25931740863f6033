package activities

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outlookd/outlookd/internal/testenv"
)

// slowUpstream stands for Graph answering after a moment, counting the
// requests under way at once.
type slowUpstream struct {
	inflight, peak, served atomic.Int64
}

func (u *slowUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	n := u.inflight.Add(1)
	for p := u.peak.Load(); n > p && !u.peak.CompareAndSwap(p, n); p = u.peak.Load() {
	}
	time.Sleep(20 * time.Millisecond)
	u.inflight.Add(-1)
	u.served.Add(1)
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

func get(t *testing.T, rt http.RoundTripper) {
	t.Helper()
	req, _ := http.NewRequest("GET", "https://graph.example/v1.0/users/u/mailFolders/inbox", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// A mailbox's budget held by one process: its requests go four at a time
// at most; another process can neither hold it nor send for the mailbox
// until it is released, and then can; a mailbox held in this process is
// not held twice.
func TestHoldAMailboxesBudget(t *testing.T) {
	dsn := testenv.Postgres(t)
	procs := sharedLimits(t, dsn, 2, func(b Budget) *MailboxLimits { return NewMailboxLimits(b, 0, 0, 0) })
	key := "hold-" + time.Now().UTC().Format("150405.000000")
	ctx := context.Background()
	up := &slowUpstream{}
	rt, release, ok, err := procs[0].Hold(ctx, key, up)
	if err != nil || !ok {
		t.Fatalf("hold: %v %v", ok, err)
	}
	if _, _, ok, _ := procs[0].Hold(ctx, key, up); ok {
		t.Fatal("held twice in one process")
	}
	if _, _, ok, _ := procs[1].Hold(ctx, key, up); ok {
		t.Fatal("held by a second process")
	}
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() { get(t, rt) })
	}
	// The other process's request waits for the hold to end.
	other := &slowUpstream{}
	otherDone := make(chan struct{})
	go func() {
		defer close(otherDone)
		get(t, procs[1].Transport(key, other))
	}()
	wg.Wait()
	if up.served.Load() != 12 || up.peak.Load() > 4 {
		t.Errorf("held: %d served, %d at once (limit 4)", up.served.Load(), up.peak.Load())
	}
	select {
	case <-otherDone:
		t.Fatal("another process sent for a held mailbox")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	release() // once is enough
	select {
	case <-otherDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the other process still waits after the release")
	}
	if other.served.Load() != 1 {
		t.Errorf("the other process's request: %d served", other.served.Load())
	}
	// Released: it can be held again, by either process.
	_, again, ok, err := procs[1].Hold(ctx, key, up)
	if err != nil || !ok {
		t.Fatalf("hold after the release: %v %v", ok, err)
	}
	again()
}
