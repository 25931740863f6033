package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplay replays histories recorded from real runs (a consent, a
// backfill with a worker killed mid-way; a live connection through moves,
// an expired delta token, a removed subscription, missed notifications and
// its disconnect): a change that breaks determinism for running
// connections fails here. Re-record with
// OUTLOOKD_RECORD_HISTORY=1 go test -run 'TestConnectAndBackfill|TestLiveSync|TestAdminConsentThenSignIn|TestApplicationConnectionSyncsTheTenant' ./connect
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
		// Its progress told by one sender the pages never wait for
		// (backfill-progress-batched).
		{"testdata/backfill_batched.json", Backfill},
		// A sign-in refused for admin consent, then accepted (admin-consent-state).
		{"testdata/connection_admin_consent.json", Connection},
		// An application connection: discovery, joins, a leave, a new
		// secret and its disconnect; its mailboxes started as children
		// (before app-mailbox-client-start), then from an activity.
		{"testdata/connection_application_children.json", Connection},
		{"testdata/connection_application.json", Connection},
		// An application connection's mailbox polled, for want of push,
		// then detached (app-mailbox-push).
		{"testdata/mailbox_application_polled.json", Mailbox},
		// The same pushed to: subscribed, a notification, a renewal on
		// reauthorizationRequired, a subscription removed and made again,
		// missed, and its subscription deleted when detached.
		{"testdata/mailbox_application_pushed.json", Mailbox},
		// A mailbox backfilled by one activity, without a child
		// (mailbox-backfill-inline), polled, then detached by its
		// connection's disconnect.
		{"testdata/mailbox_application_inline.json", Mailbox},
		// A connection backfilled by one activity (connection-backfill-inline),
		// its worker killed while it paged; and a live one through the
		// TestLiveSync story, sleeping on one standing timer
		// (steady-timer), then disconnected.
		{"testdata/connection_inline.json", Connection},
		{"testdata/connection_live_steady.json", Connection},
		// The same stories by runs since connection-versions-at-once: one
		// marker at the start, registry writes as local activities, only
		// changed search attributes upserted.
		{"testdata/connection_once.json", Connection},
		{"testdata/connection_live_once.json", Connection},
		{"testdata/connection_admin_consent_once.json", Connection},
		{"testdata/connection_application_once.json", Connection},
		{"testdata/mailbox_application_once.json", Mailbox},
		// The same with its mailboxes backfilled ahead of their workflows
		// (app-prefill), and one of those mailboxes, begun live.
		{"testdata/connection_application_prefill.json", Connection},
		{"testdata/mailbox_application_prefill.json", Mailbox},
		// An application connection whose starts wait for the batch
		// backfilling their mailboxes ahead (app-starts-after-prefill).
		{"testdata/connection_application_waits.json", Connection},
		// And one whose disconnect ends its mailboxes a page at a time
		// (app-end-mailboxes-at-once).
		{"testdata/connection_application_ends.json", Connection},
		// Sends (send-slot-at-submit, send-end-signal, send-local-steps): one queued and
		// canceled at once by the disconnect saga's signal, one sent with
		// large files, one without.
		// Recorded by TestRecordSendHistories.
		{"testdata/send_ended.json", Send},
		{"testdata/send_sent.json", Send},
		{"testdata/send_local.json", Send},
		// The same by the code since send-versions-at-once.
		{"testdata/send_ended_once.json", Send},
		{"testdata/send_sent_once.json", Send},
		{"testdata/send_local_once.json", Send},
		// The same since send-versions-at-once version 2: the submission
		// a local activity, numbered.
		{"testdata/send_ended_submit.json", Send},
		{"testdata/send_sent_submit.json", Send},
		{"testdata/send_local_submit.json", Send},
		// The same given their version in their input: no marker.
		{"testdata/send_ended_given.json", Send},
		{"testdata/send_sent_given.json", Send},
		{"testdata/send_local_given.json", Send},
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

// TestChangeIDsListed: every workflow.GetVersion change ID in the
// workflows is listed in versions.go, and every listed one is in use.
func TestChangeIDsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	re := regexp.MustCompile(`GetVersion\([^,]+,\s*"([^"]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(src, -1) {
			used[string(m[1])] = true
		}
	}
	for id := range used {
		if !slices.Contains(changeIDs, id) {
			t.Errorf("change ID %q is used but not listed in versions.go", id)
		}
	}
	for _, id := range changeIDs {
		if !used[id] {
			t.Errorf("change ID %q is listed in versions.go but not used", id)
		}
	}
}
