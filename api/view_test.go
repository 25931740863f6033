package api

import (
	"testing"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// TestViewNextAction: the next action the workflow words is shown without
// a dangling separator when its detail is empty.
func TestViewNextAction(t *testing.T) {
	for _, tc := range []struct{ workflow, want string }{
		{"disconnecting: ", "disconnecting"},
		{"disconnecting:", "disconnecting"},
		{"disconnecting: deleting subscriptions", "disconnecting: deleting subscriptions"},
		{"disconnecting", "disconnecting"},
		{"waiting for the user's consent", "waiting for the user's consent"},
		{"", ""},
	} {
		st := &workflows.Status{NextAction: tc.workflow}
		st.State = workflows.StateDisconnecting
		if got := view(store.Connection{ID: "conn_AAAAAAAAAAAAAAAA"}, 0, st).NextAction; got != tc.want {
			t.Errorf("next action %q shown as %q, want %q", tc.workflow, got, tc.want)
		}
	}
}
