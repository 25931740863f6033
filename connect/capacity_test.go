package connect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/internal/enginetest"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// The measurements behind docs/capacity.md: what one mailbox costs in
// Postgres and in Temporal. Each prints JSON lines ({"bench": ...}) and
// runs only with OUTLOOKD_BENCH=1 against the test stack.

// TestBenchStorage backfills the same generated mailbox under each body
// policy and reports, per stored message, the rows and bytes it added to
// each table (pg_total_relation_size: heap, TOAST and indexes), against
// the same tables just before the connect.
func TestBenchStorage(t *testing.T) {
	if os.Getenv("OUTLOOKD_BENCH") != "1" {
		t.Skip("a measurement: run with OUTLOOKD_BENCH=1 (docs/capacity.md)")
	}
	const messages = 3000
	for _, bodies := range []string{workflows.BodiesStore, workflows.BodiesOnDemand, workflows.BodiesNone, workflows.BodiesMetadata} {
		t.Run(bodies, func(t *testing.T) {
			ctx := context.Background()
			e := enginetest.Start(t, graphsim.Options{MailboxRequests: 1 << 30}, workflows.Options{PageSize: 200})
			spec := graphsim.GenerateSpec{Count: messages, Days: 25, AttachmentShare: 0.1, ThreadShare: 0.3, Seed: 7}
			if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, spec); err != nil {
				t.Fatal(err)
			}
			before := tableSizes(t, e.Store)
			id, out := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30, Bodies: bodies})
			if out.State != workflows.StateActive {
				t.Fatal(out)
			}
			e.WaitFor(id, 10*time.Minute, "backfill", func(st workflows.Status) bool { return !st.Backfill.Covered.IsZero() && !st.Backfill.Running })
			n, err := e.Store.CountMessages(ctx, id)
			if err != nil || n != messages {
				t.Fatalf("stored %d of %d (%v)", n, messages, err)
			}
			if _, err := e.Store.Pool().Exec(ctx, "VACUUM ANALYZE"); err != nil {
				t.Fatal(err)
			}
			after := tableSizes(t, e.Store)
			var body, preview float64
			if err := e.Store.Pool().QueryRow(ctx, `SELECT coalesce(avg(octet_length(body)), 0), coalesce(avg(octet_length(body_preview)), 0) FROM messages`).Scan(&body, &preview); err != nil {
				t.Fatal(err)
			}
			fig := map[string]any{"bodies": bodies, "messages": n, "avg_body_bytes": benchfig.Round(body, 0), "avg_preview_bytes": benchfig.Round(preview, 0)}
			var total int64
			for _, name := range sortedKeys(after) {
				grew := after[name].bytes - before[name].bytes
				rows := after[name].rows - before[name].rows
				if grew <= 0 && rows == 0 {
					continue
				}
				total += grew
				fig[name+"_rows_per_message"] = benchfig.Round(float64(rows)/float64(n), 3)
				fig[name+"_bytes_per_message"] = benchfig.Round(float64(grew)/float64(n), 0)
			}
			fig["bytes_per_message"] = benchfig.Round(float64(total)/float64(n), 0)
			_ = benchfig.Fprint(os.Stdout, "storage", fig)
		})
	}
}

type tableSize struct{ rows, bytes int64 }

// tableSizes is every table's row count and total size (heap, TOAST,
// indexes).
func tableSizes(t *testing.T, st *store.Store) map[string]tableSize {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Pool().Query(ctx, `SELECT relname FROM pg_stat_user_tables WHERE schemaname = 'public'`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rows.Close()
	out := map[string]tableSize{}
	for _, n := range names {
		var s tableSize
		q := fmt.Sprintf(`SELECT count(*), pg_total_relation_size('%s') FROM %q`, n, n)
		if err := st.Pool().QueryRow(ctx, q).Scan(&s.rows, &s.bytes); err != nil {
			t.Fatal(err)
		}
		out[n] = s
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestBenchHistory measures, on a real history, what a pushed mailbox
// costs Temporal: its connect and backfill; its quiet wake-ups
// (reconciliation round, subscription renewal, refresh-token keep-alive),
// on a shortened schedule; and its live sync, one notified message at a
// time and in a burst. Each wake-up is the history from the event that
// woke the workflow (a timer, a signal, an update) to the next, labelled
// by what it ran; its billable actions follow Temporal Cloud's list
// (https://docs.temporal.io/cloud/actions).
func TestBenchHistory(t *testing.T) {
	if os.Getenv("OUTLOOKD_BENCH") != "1" {
		t.Skip("a measurement: run with OUTLOOKD_BENCH=1 (docs/capacity.md)")
	}
	ctx := context.Background()
	vc := &vaultCounter{}
	e := enginetest.StartLive(t, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{BatchWindow: 5 * time.Millisecond, MinLifetime: time.Second}},
		workflows.Options{PageSize: 200, ReconcileEvery: 20 * time.Second, SubscriptionLifetime: 70 * time.Second, KeepAliveEvery: 45 * time.Second},
		enginetest.VaultVia(vc.proxy(t)))
	const backfilled = 1000
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: backfilled, Days: 25, AttachmentShare: 0.1, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	vaultBefore := vc.snapshot()
	id, _ := e.ConnectUser(e.Ada.UPN, workflows.Settings{BackfillDays: 30})
	e.WaitFor(id, 5*time.Minute, "push mode", func(st workflows.Status) bool { return st.Sync.Mode == workflows.SyncPush && st.Sync.Rounds > 0 })
	printGraph("vault-connect", vaultBefore, vc.snapshot(), nil)
	wf := workflows.ConnectionWorkflowID(id)

	// Connect and backfill: the connection's history so far and its
	// backfill child's.
	h := readHistory(t, e.Temporal, wf)
	connected := tallyOf(h, 0)
	printTally("history-connect", connected, map[string]any{"messages": backfilled, "workflow": "connection"})
	// The backfill begins in one activity; a child takes what it left.
	if child := readHistory(t, e.Temporal, workflows.BackfillWorkflowID(id, 1)); len(child) > 0 {
		printTally("history-backfill-child", tallyOf(child, 0), map[string]any{"messages": backfilled, "workflow": "backfill"})
	}
	mark := lastID(h)

	// Quiet: no mail; the shortened timers fall due.
	graphBefore, rounds := e.Sim.Counters(), e.Status(id).Sync.Rounds
	vaultBefore = vc.snapshot()
	time.Sleep(110 * time.Second)
	h = readHistory(t, e.Temporal, wf)
	for label, w := range wakes(h, mark) {
		printTally("history-quiet-wake", w.tally, map[string]any{"wake": label, "wakes": w.n})
	}
	printGraph("graph-quiet", graphBefore, e.Sim.Counters(), map[string]any{"rounds": e.Status(id).Sync.Rounds - rounds})
	printGraph("vault-quiet", vaultBefore, vc.snapshot(), nil)
	mark = lastID(h)

	// Active: messages one at a time, each waited for.
	const single = 20
	graphBefore, rounds = e.Sim.Counters(), e.Status(id).Sync.Rounds
	vaultBefore = vc.snapshot()
	for range single {
		if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "live", From: graphsim.Recipient{Name: "X", Address: "x@fabrikam.example"}}); err != nil {
			t.Fatal(err)
		}
		want := e.Status(id).Sync.Upserted + 1
		e.WaitFor(id, 30*time.Second, "the message", func(st workflows.Status) bool { return st.Sync.Upserted >= want })
	}
	printGraph("graph-live-single", graphBefore, e.Sim.Counters(), map[string]any{"messages": single, "rounds": e.Status(id).Sync.Rounds - rounds})
	printGraph("vault-live-single", vaultBefore, vc.snapshot(), map[string]any{"messages": single})
	h = readHistory(t, e.Temporal, wf)
	total := tallyOf(h, mark)
	printTally("history-live-single", total, map[string]any{"messages": single, "rounds": e.Status(id).Sync.Rounds - rounds,
		"events_per_message": benchfig.Round(float64(total.events)/single, 1), "actions_per_message": benchfig.Round(float64(total.actions)/single, 1)})
	for label, w := range wakes(h, mark) {
		printTally("history-live-wake", w.tally, map[string]any{"wake": label, "wakes": w.n})
	}
	mark = lastID(h)

	// Active: a burst of messages at once.
	const burst = 50
	rounds = e.Status(id).Sync.Rounds
	want := e.Status(id).Sync.Upserted + burst
	specs := make([]graphsim.MessageSpec, burst)
	for i := range specs {
		specs[i] = graphsim.MessageSpec{Subject: fmt.Sprintf("burst %d", i), From: graphsim.Recipient{Name: "Y", Address: "y@fabrikam.example"}}
	}
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, specs...); err != nil {
		t.Fatal(err)
	}
	e.WaitFor(id, time.Minute, "the burst", func(st workflows.Status) bool { return st.Sync.Upserted >= want })
	time.Sleep(2 * time.Second)
	h = readHistory(t, e.Temporal, wf)
	total = tallyOf(h, mark)
	printTally("history-live-burst", total, map[string]any{"messages": burst, "rounds": e.Status(id).Sync.Rounds - rounds,
		"events_per_message": benchfig.Round(float64(total.events)/burst, 2), "actions_per_message": benchfig.Round(float64(total.actions)/burst, 2)})
	var events int64
	if err := e.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE type LIKE 'message.%'`).Scan(&events); err != nil {
		t.Fatal(err)
	}
	var evBytes, evRows int64
	var rowBytes float64
	if err := e.Store.Pool().QueryRow(ctx, `SELECT pg_total_relation_size('events'), (SELECT count(*) FROM events),
		(SELECT avg(pg_column_size(e.*)) FROM events e WHERE type LIKE 'message.%')`).Scan(&evBytes, &evRows, &rowBytes); err != nil {
		t.Fatal(err)
	}
	_ = benchfig.Fprint(os.Stdout, "history-live-events", map[string]any{"message_events": events, "live_messages": single + burst,
		"events_rows": evRows, "events_table_bytes": evBytes, "message_event_row_bytes": benchfig.Round(rowBytes, 0)})
}

// vaultCounter is a reverse proxy in front of the test Vault that counts
// its requests by method and kind of path.
type vaultCounter struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (v *vaultCounter) proxy(t *testing.T) func(string) string {
	return func(addr string) string {
		target, err := url.Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v.mu.Lock()
			if v.counts == nil {
				v.counts = map[string]int64{}
			}
			v.counts[r.Method+" "+vaultPathKind(r.URL.Path)]++
			v.mu.Unlock()
			rp.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
}

// vaultPathKind names what a request touches: a connection's tokens, the
// app's client secret, a consent's pending verifier, code or redeemed
// tokens, a subscription's client state (each a KV read or write of data,
// or a listing or deletion of metadata), or the rest (login, token
// renewal, health).
func vaultPathKind(p string) string {
	kind := func(rest string) string {
		switch {
		case strings.HasSuffix(rest, "/tokens"):
			return "tokens"
		case strings.HasSuffix(rest, "/app"):
			return "app_secret"
		case strings.HasSuffix(rest, "/pending"):
			return "pending"
		case strings.HasSuffix(rest, "-redeemed"):
			return "consent_redeemed"
		case strings.Contains(rest, "/consent"):
			return "consent"
		case strings.HasSuffix(rest, "/subscription"):
			return "client_state"
		}
		return "other"
	}
	switch {
	case strings.Contains(p, "/data/"):
		return kind(p)
	case strings.Contains(p, "/metadata/"):
		return "metadata " + kind(strings.TrimSuffix(p, "/"))
	}
	return p
}

func (v *vaultCounter) snapshot() map[string]int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string]int64{}
	for k, n := range v.counts {
		out[k] = n
	}
	return out
}

// printGraph prints the graphsim counters that grew between two snapshots:
// requests by class and status, tokens issued.
func printGraph(name string, before, after map[string]int64, extra map[string]any) {
	grew := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			grew[k] = d
		}
	}
	fig := map[string]any{"counters": grew}
	for k, v := range extra {
		fig[k] = v
	}
	_ = benchfig.Fprint(os.Stdout, name, fig)
}

// readHistory reads a workflow's history; one that does not exist is empty.
func readHistory(t *testing.T, tc client.Client, workflowID string) []*historypb.HistoryEvent {
	t.Helper()
	var out []*historypb.HistoryEvent
	it := tc.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return nil // no such workflow: an empty history
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func lastID(h []*historypb.HistoryEvent) int64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].GetEventId()
}

// tally counts history events and the Temporal Cloud actions they stand for.
type tally struct {
	events     int
	actions    int
	byEvent    map[string]int
	byAction   map[string]int
	activities map[string]int
}

func newTally() tally {
	return tally{byEvent: map[string]int{}, byAction: map[string]int{}, activities: map[string]int{}}
}

// add books one event. Actions (https://docs.temporal.io/cloud/actions):
// a workflow start (client, continue-as-new, child: counted in the
// child's own history), a timer started, an activity scheduled and each
// retry, the local activities of one workflow task together, a search
// attribute upsert (not TemporalChangeVersion's), a signal sent by a
// client (a workflow's is counted where it sends it), an accepted update.
// Queries, heartbeats and rejected updates are not in a history.
func (t *tally) add(ev *historypb.HistoryEvent, laTask map[int64]bool, wftCompleted int64) {
	t.events++
	name := ev.GetEventType().String()
	t.byEvent[name]++
	act := ""
	switch ev.GetEventType() {
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
		act = "workflow_started"
	case enumspb.EVENT_TYPE_TIMER_STARTED:
		act = "timer_started"
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
		act = "activity_started"
		t.activities[ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()]++
	case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
		if a := ev.GetActivityTaskStartedEventAttributes().GetAttempt(); a > 1 {
			t.byAction["activity_retried"] += int(a - 1)
			t.actions += int(a - 1)
		}
	case enumspb.EVENT_TYPE_MARKER_RECORDED:
		switch ev.GetMarkerRecordedEventAttributes().GetMarkerName() {
		case "LocalActivity":
			t.activities["(local)"]++
			if !laTask[wftCompleted] {
				laTask[wftCompleted] = true
				act = "local_activities"
			}
		case "SideEffect", "MutableSideEffect":
			act = "side_effect"
		}
	case enumspb.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
		fields := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()
		if _, v := fields["TemporalChangeVersion"]; !(v && len(fields) == 1) {
			act = "search_attributes_upserted"
		}
	case enumspb.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
		act = "signal_sent"
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
		if ev.GetWorkflowExecutionSignaledEventAttributes().GetExternalWorkflowExecution() == nil {
			act = "signal_sent"
		}
	case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
		act = "update"
	}
	if act != "" {
		t.byAction[act]++
		t.actions++
	}
}

// tallyOf counts the events after the event ID from.
func tallyOf(h []*historypb.HistoryEvent, from int64) tally {
	t := newTally()
	la := map[int64]bool{}
	var wft int64
	for _, ev := range h {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			wft = ev.GetEventId()
		}
		if ev.GetEventId() > from {
			t.add(ev, la, wft)
		}
	}
	return t
}

type wakeTally struct {
	n     int
	tally tally
}

// wakes splits the history after from at each event that wakes the
// workflow (a timer fired, a signal, an update) and sums the wake-ups by
// what they ran: the activities they scheduled, "local round" for a
// round run as a local activity, "nothing" otherwise.
func wakes(h []*historypb.HistoryEvent, from int64) map[string]*wakeTally {
	out := map[string]*wakeTally{}
	var cur *tally
	var cause string
	la := map[int64]bool{}
	var wft int64
	flush := func() {
		if cur == nil {
			return
		}
		var ran []string
		for a := range cur.activities {
			ran = append(ran, a)
		}
		slices.Sort(ran)
		label := cause + ": nothing"
		if len(ran) > 0 {
			label = cause + ": " + fmt.Sprint(ran)
		}
		w := out[label]
		if w == nil {
			w = &wakeTally{tally: newTally()}
			out[label] = w
		}
		w.n++
		w.tally.events += cur.events
		w.tally.actions += cur.actions
		for k, v := range cur.byEvent {
			w.tally.byEvent[k] += v
		}
		for k, v := range cur.byAction {
			w.tally.byAction[k] += v
		}
	}
	for _, ev := range h {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED {
			wft = ev.GetEventId()
		}
		if ev.GetEventId() <= from {
			continue
		}
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_FIRED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			flush()
			t := newTally()
			cur = &t
			cause = map[enumspb.EventType]string{enumspb.EVENT_TYPE_TIMER_FIRED: "timer", enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
				enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: "update"}[ev.GetEventType()]
		}
		if cur != nil {
			cur.add(ev, la, wft)
		}
	}
	flush()
	return out
}

func printTally(name string, t tally, extra map[string]any) {
	fig := map[string]any{"events": t.events, "actions": t.actions, "by_event": t.byEvent, "by_action": t.byAction}
	if len(t.activities) > 0 {
		fig["activities"] = t.activities
	}
	for k, v := range extra {
		fig[k] = v
	}
	_ = benchfig.Fprint(os.Stdout, name, fig)
}
