package activities

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// TestSubmissionMadeSorted: what taking a send's slot answered becomes the
// submission's result: a time to wait for, an ambiguous answer for a
// submission made before (its worker died before recording Graph's
// answer), or a failure that left nothing for Graph.
func TestSubmissionMadeSorted(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		wait      time.Time
		err       error
		ambiguous bool
		notSent   bool
	}{
		{name: "a slot now"},
		{name: "a slot later", wait: at},
		{name: "made before", err: fmt.Errorf("store: send s, submission 1: %w", store.ErrSubmissionMade), ambiguous: true},
		{name: "the send ended", err: fmt.Errorf("store: send s: %w", store.ErrSendEnded), notSent: true},
		{name: "Postgres down", err: errors.New("dial tcp: connection refused"), notSent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := submissionMade(tc.wait, tc.err)
			if res.Ambiguous != tc.ambiguous || !res.WaitUntil.Equal(tc.wait) || res.Accepted || res.NotADraft {
				t.Errorf("result %+v", res)
			}
			var appErr *temporal.ApplicationError
			if got := errors.As(err, &appErr) && appErr.Type() == workflows.ErrNotSent; got != tc.notSent || (err != nil) != tc.notSent {
				t.Errorf("error %v, want not sent %v", err, tc.notSent)
			}
		})
	}
}
