package workflows

import (
	"context"
	"os"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestRecordSendHistories records the send workflow's histories the replay
// test reads (testdata/send_*_given.json, by the code since sends are
// given their version in their input, SendInput.Version), against a Temporal server
// (TEMPORAL_ADDRESS) with the in-memory mailbox as its activities:
//
//	OUTLOOKD_RECORD_HISTORY=1 TEMPORAL_ADDRESS=127.0.0.1:17233 go test -run TestRecordSendHistories ./workflows
//
// Record them again only beside a versioned change (versions.go), under
// new names: the histories of earlier code stay.
func TestRecordSendHistories(t *testing.T) {
	c, suffix := serverClient(t, "OUTLOOKD_RECORD_HISTORY", "records histories")
	queue := "outlookd-record-" + suffix
	w := worker.New(c, queue, worker.Options{})
	m := &fakeMailbox{}
	m.registerOn(w, time.Now)
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := func(id string, in SendInput, during func()) {
		t.Helper()
		m.mu.Lock()
		m.where = FoundNowhere // a new send: nothing of it in the mailbox
		m.mu.Unlock()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: queue}, Send, in)
		if err != nil {
			t.Fatal(err)
		}
		if during != nil {
			time.Sleep(2 * time.Second)
			during()
		}
		var res SendResult
		if err := run.Get(ctx, &res); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %+v", id, res)
	}
	// A send queued for an hour, told of the disconnect: canceled at once.
	queued := "send-record-queued-" + suffix
	run(queued, SendInput{SendID: "snd_q", Version: SendVersion, ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Rates: testRates,
		NotBefore: time.Now().Add(time.Hour)}, func() {
		if err := c.SignalWorkflow(ctx, queued, "", SignalSendEnded, SendEndedSignal{Reason: ReasonConnectionEnded}); err != nil {
			t.Fatal(err)
		}
	})
	// A send that goes at once, its 40 MB of files prepared by an
	// activity given their time.
	sent := "send-record-sent-" + suffix
	run(sent, SendInput{SendID: "snd_s", Version: SendVersion, ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Rates: testRates, FileBytes: 40 << 20}, nil)
	// A send without files: prepared and looked for by local activities.
	local := "send-record-local-" + suffix
	run(local, SendInput{SendID: "snd_l", Version: SendVersion, ConnectionID: "conn_1", UserID: "u-1", Recipients: 1, Rates: testRates}, nil)
	for id, path := range map[string]string{queued: "testdata/send_ended_given.json", sent: "testdata/send_sent_given.json", local: "testdata/send_local_given.json"} {
		var h historypb.History
		it := c.GetWorkflowHistory(ctx, id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			ev, err := it.Next()
			if err != nil {
				t.Fatal(err)
			}
			h.Events = append(h.Events, ev)
		}
		out, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
