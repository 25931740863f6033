package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplay replays histories recorded from real runs (a consent, a
// backfill with a worker killed mid-way; a live connection through moves,
// an expired delta token, a removed subscription, missed notifications and
// its disconnect): a change that breaks determinism for running
// connections fails here. Re-record with
// OUTLOOKD_RECORD_HISTORY=1 go test -run 'TestConnectAndBackfill|TestLiveSync' ./connect
// when a change is deliberately versioned (versions.go), keeping the old
// histories beside the new ones.
func TestReplay(t *testing.T) {
	tests := []struct {
		file string
		fn   any
	}{
		{"testdata/connection.json", Connection},
		{"testdata/connection_live.json", Connection},
		{"testdata/backfill.json", Backfill},
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
