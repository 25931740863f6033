package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplay replays histories recorded from real runs (a consent, a
// backfill with a worker killed mid-way; a live connection through moves,
// an expired delta token, a removed subscription, missed notifications and
// its disconnect): a change that breaks determinism
// for running connections fails here. Re-record with
// OUTLOOKD_RECORD_HISTORY=1 go test -run 'TestConnectAndBackfill|TestLiveSync' ./connect
// when a change is deliberately versioned.
func TestReplay(t *testing.T) {
	tests := []struct {
		file string
		fn   any
	}{
		{"testdata/connection.json", Connection},
		{"testdata/connection_live.json", Connection},
		{"testdata/backfill.json", Backfill},
		// Histories recorded before the versioned changes (SyncMode search
		// attribute, backfill.completed event, registry-first disconnect):
		// running workflows like these must keep replaying.
		{"testdata/connection_v0.json", Connection},
		{"testdata/connection_live_v0.json", Connection},
		// Recorded before live rounds became local activities.
		{"testdata/connection_live_v1.json", Connection},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(tt.fn)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, tt.file); err != nil {
				t.Fatal(err)
			}
		})
	}
}
