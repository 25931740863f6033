package activities_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// cancelOnly answers cancels as the Temporal client would: nil for a
// running workflow, NotFound for none, CancellationAlreadyRequested for
// one already asked.
type cancelOnly struct {
	answers   map[string]error
	cancelled []string
}

func (c *cancelOnly) ExecuteWorkflow(context.Context, client.StartWorkflowOptions, any, ...any) (client.WorkflowRun, error) {
	panic("no start expected")
}

func (c *cancelOnly) CancelWorkflow(_ context.Context, workflowID, _ string) error {
	c.cancelled = append(c.cancelled, workflowID)
	return c.answers[workflowID]
}

// TestEndMailboxes: a disconnecting connection's page of mailboxes is
// ended: running workflows are asked to cancel (and left to detach their
// mailboxes), a mailbox without one is detached here with the retention
// and its event, and a run again ends only what is still live.
func TestEndMailboxes(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	stamp := time.Now().UTC().Format("150405000000")
	conn := "conn_end_" + stamp
	if err := st.CreateConnection(ctx, store.Connection{ID: conn, OrgID: "o", OwnerID: "admin", State: "disconnecting", Mode: "application"}); err != nil {
		t.Fatal(err)
	}
	running, unstarted, asked := "mbx_a_"+stamp, "mbx_b_"+stamp, "mbx_c_"+stamp
	for i, id := range []string{running, unstarted, asked} {
		if err := st.AttachMailbox(ctx, store.Mailbox{ID: id, ConnectionID: conn, Address: id + "@contoso.example", UserID: "u" + string(rune('1'+i)), State: "active", Settings: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	wf := &cancelOnly{answers: map[string]error{
		workflows.MailboxWorkflowID(unstarted): serviceerror.NewNotFound("workflow execution already completed"),
		workflows.MailboxWorkflowID(asked):     serviceerror.NewCancellationAlreadyRequested("cancellation already requested"),
	}}
	a := &activities.Activities{Store: st, Workflows: wf}
	in := workflows.EndMailboxesInput{ConnectionID: conn, Limit: 10, Retention: workflows.RetentionKeep}
	res, err := a.EndMailboxes(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.IDs, []string{running, unstarted, asked}) || !slices.Equal(res.Detached, []string{unstarted}) || len(wf.cancelled) != 3 {
		t.Fatalf("ended %+v, cancels asked %v", res, wf.cancelled)
	}
	live, err := st.LiveMailboxIDs(ctx, conn, "", 10)
	if err != nil || !slices.Equal(live, []string{running, asked}) {
		t.Fatalf("live after: %v %v, want the two whose workflows detach them", live, err)
	}
	events, err := st.Events(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	detached := 0
	for _, e := range events {
		if e.Type == "mailbox.detached" {
			detached++
			if e.MailboxID != unstarted || e.Data["retention"] != workflows.RetentionKeep {
				t.Errorf("event %+v", e)
			}
		}
	}
	if detached != 1 {
		t.Errorf("%d mailbox.detached events, want 1", detached)
	}
	// Run again (a retry): only what is still live is asked.
	wf.cancelled = nil
	again, err := a.EndMailboxes(ctx, in)
	if err != nil || !slices.Equal(again.IDs, []string{running, asked}) || len(again.Detached) != 0 || len(wf.cancelled) != 2 {
		t.Errorf("again: %+v %v, cancels %v", again, err, wf.cancelled)
	}
	// A page after the first mailbox.
	page, err := a.EndMailboxes(ctx, workflows.EndMailboxesInput{ConnectionID: conn, After: running, Limit: 1, Retention: workflows.RetentionKeep})
	if err != nil || !slices.Equal(page.IDs, []string{asked}) {
		t.Errorf("the page after %s: %+v %v", running, page, err)
	}
}
