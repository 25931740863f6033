package graphsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

type batchAnswer struct {
	Responses []struct {
		ID      string            `json:"id"`
		Status  int               `json:"status"`
		Headers map[string]string `json:"headers"`
		Body    json.RawMessage   `json:"body"`
	} `json:"responses"`
}

func (a batchAnswer) statuses() map[string]int {
	out := map[string]int{}
	for _, r := range a.Responses {
		out[r.ID] = r.Status
	}
	return out
}

func getItems(n int, url string) []any {
	items := make([]any, n)
	for i := range items {
		items[i] = map[string]any{"id": fmt.Sprint(i + 1), "method": "GET", "url": url}
	}
	return items
}

// chain makes each request depend on the one before.
func chain(items []any) []any {
	for i := 1; i < len(items); i++ {
		items[i].(map[string]any)["dependsOn"] = []string{fmt.Sprint(i)}
	}
	return items
}

func (f *fixture) batch(t *testing.T, tok string, items []any) batchAnswer {
	t.Helper()
	var a batchAnswer
	if st, _ := f.graphDo(t, tok, "POST", "/$batch", map[string]any{"requests": items}, &a); st != 200 || len(a.Responses) != len(items) {
		t.Fatalf("batch: %d, %d responses", st, len(a.Responses))
	}
	return a
}

// Without dependsOn, Graph hands Outlook four requests of a batch at a
// time: eight slow requests take two rounds and none is over the mailbox's
// concurrency.
func TestBatchRunsFourAtATime(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "one"})
	const latency = 300 * time.Millisecond
	f.sim.SetFault(graphsim.Fault{Endpoint: "messages", Latency: latency})
	start := time.Now()
	a := f.batch(t, tok, getItems(8, "/me/messages?$top=1"))
	took := time.Since(start)
	for id, st := range a.statuses() {
		if st != 200 {
			t.Errorf("item %s: %d", id, st)
		}
	}
	// Two rounds take 2×latency; one at a time would take 8×.
	if took < 2*latency || took >= 7*latency {
		t.Errorf("eight requests of %v took %v: want two rounds of four", latency, took)
	}
}

// Each request of a batch takes its own place in the mailbox's concurrency:
// with room for two, two of four parallel requests are throttled; a chain
// runs one at a time and fits.
func TestBatchCountsAgainstMailboxConcurrency(t *testing.T) {
	f := newFixture(t, graphsim.Options{MailboxConcurrency: 2})
	tok := f.token(t, "Mail.Read")
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "one"})
	f.sim.SetFault(graphsim.Fault{Endpoint: "messages", Latency: 300 * time.Millisecond})
	a := f.batch(t, tok, getItems(4, "/me/messages?$top=1"))
	count := map[int]int{}
	for _, r := range a.Responses {
		count[r.Status]++
		if r.Status == 429 && r.Headers["Retry-After"] == "" {
			t.Errorf("throttled item %s without Retry-After: %v", r.ID, r.Headers)
		}
	}
	if count[200] != 2 || count[429] != 2 {
		t.Errorf("four parallel requests with room for two: %v", count)
	}
	// The control API reports the overrun: three at once at their
	// highest (the third refused), two refused.
	loads, err := f.ctl.MailboxLoads(context.Background())
	if err != nil || len(loads) != 1 || loads[0].Mailbox != f.ada.ID || loads[0].Peak != 3 || loads[0].Refused != 2 || loads[0].InFlight != 0 {
		t.Errorf("mailbox loads %+v (%v), want Ada's with peak 3, 2 refused, none in flight", loads, err)
	}
	a = f.batch(t, tok, chain(getItems(4, "/me/messages?$top=1")))
	for i, r := range a.Responses {
		if r.Status != 200 || r.ID != fmt.Sprint(i+1) {
			t.Errorf("chained item %d: %s %d", i, r.ID, r.Status)
		}
	}
}

// A batch sent while other requests hold every slot of the mailbox gets a
// 429 for each request, with Retry-After in the item's headers, inside a 200;
// the dependents of a throttled request answer 424.
func TestBatchThrottledWhileSlotsAreHeld(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read")
	f.sim.SetFault(graphsim.Fault{Endpoint: "folders", Latency: 2 * time.Second})
	var wg sync.WaitGroup
	defer wg.Wait()
	for range 4 {
		wg.Go(func() { f.graphGet(t, tok, "/me/mailFolders", nil) })
	}
	deadline := time.Now().Add(time.Second)
	for {
		if st, _ := f.graphGet(t, tok, "/me/messages?$top=1", nil); st == 429 {
			break // the four hold every slot
		}
		if time.Now().After(deadline) {
			t.Fatal("the four slow requests never held the mailbox")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a := f.batch(t, tok, []any{
		map[string]any{"id": "1", "method": "GET", "url": "/me/messages?$top=1"},
		map[string]any{"id": "2", "method": "GET", "url": "/me/messages?$top=2"},
		map[string]any{"id": "3", "method": "GET", "url": "/me"},
	})
	for _, r := range a.Responses {
		if r.ID == "3" {
			continue // /me is not Outlook's
		}
		var ge graphErr
		_ = json.Unmarshal(r.Body, &ge)
		if r.Status != 429 || r.Headers["Retry-After"] != "1" || ge.Error.Code != "ApplicationThrottled" {
			t.Errorf("item %s: %d %v %s", r.ID, r.Status, r.Headers, r.Body)
		}
	}
	a = f.batch(t, tok, chain(getItems(3, "/me/messages?$top=1")))
	if st := a.statuses(); st["1"] != 429 || st["2"] != 424 || st["3"] != 424 {
		t.Errorf("chain behind a throttled request: %v", st)
	}
}

// Answers are listed as they finish, not in the batch's order; clients
// match them by id.
func TestBatchAnswersInCompletionOrder(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read", "User.Read")
	f.sim.SetFault(graphsim.Fault{Endpoint: "folders", Latency: 300 * time.Millisecond})
	a := f.batch(t, tok, []any{
		map[string]any{"id": "slow", "method": "GET", "url": "/me/mailFolders/inbox"},
		map[string]any{"id": "fast", "method": "GET", "url": "/me"},
	})
	if a.Responses[0].ID != "fast" || a.Responses[1].ID != "slow" {
		t.Errorf("order: %s, %s", a.Responses[0].ID, a.Responses[1].ID)
	}
}

// dependsOn: a chain or every dependent on the same request; nothing else.
func TestBatchDependsOnShapes(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	tok := f.token(t, "Mail.Read", "User.Read")
	item := func(id string, deps ...string) map[string]any {
		it := map[string]any{"id": id, "method": "GET", "url": "/me"}
		if deps != nil {
			it["dependsOn"] = deps
		}
		return it
	}
	for _, tc := range []struct {
		name  string
		items []any
		ok    bool
	}{
		{"parallel", []any{item("1"), item("2"), item("3")}, true},
		{"chain", []any{item("1"), item("2", "1"), item("3", "2")}, true},
		{"all on the same", []any{item("1"), item("2", "1"), item("3", "1")}, true},
		{"same, one without", []any{item("1"), item("2"), item("3", "1")}, true},
		{"two dependencies", []any{item("1"), item("2"), item("3", "1", "2")}, false},
		{"a chain and a stray", []any{item("1"), item("2", "1"), item("3", "2"), item("4")}, false},
		{"two chains", []any{item("1"), item("2", "1"), item("3"), item("4", "3")}, false},
	} {
		var ge graphErr
		st, _ := f.graphDo(t, tok, "POST", "/$batch", map[string]any{"requests": tc.items}, &ge)
		switch {
		case tc.ok && st != 200:
			t.Errorf("%s: %d %+v", tc.name, st, ge.Error)
		case !tc.ok && (st != 400 || ge.Error.Message != "Batch should be either fully sequential or fully parallel."):
			t.Errorf("%s: %d %+v", tc.name, st, ge.Error)
		}
	}
	// A failed request fails every request that depends on it.
	a := f.batch(t, tok, []any{
		map[string]any{"id": "1", "method": "GET", "url": "/me/mailFolders/nope"},
		item("2", "1"), item("3", "1"),
	})
	if st := a.statuses(); st["1"] != 404 || st["2"] != 424 || st["3"] != 424 {
		t.Errorf("dependents of a failed request: %v", st)
	}
}
