package worker

import (
	"context"
	"reflect"
	"testing"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/workflows"
)

// registry records what Register adds to a worker.
type registry struct {
	sdkworker.Registry
	workflows  []any
	names      []string // the names given with RegisterWorkflowWithOptions
	activities []any
}

func (r *registry) RegisterWorkflow(w any) { r.workflows = append(r.workflows, w) }
func (r *registry) RegisterWorkflowWithOptions(w any, o workflow.RegisterOptions) {
	r.workflows = append(r.workflows, w)
	r.names = append(r.names, o.Name)
}
func (r *registry) RegisterActivity(a any) { r.activities = append(r.activities, a) }

// TestEveryActivityIsRegisteredWithItsTypes: every activity the workflows
// call is a method the worker registers, taking a context and exactly the
// input type the workflows send, and returning exactly the result type
// they decode (a renamed method, or a changed type, fails here rather than
// at run time).
func TestEveryActivityIsRegisteredWithItsTypes(t *testing.T) {
	var r registry
	Register(&activities.Activities{})(&r)
	if len(r.activities) != 1 {
		t.Fatalf("registered %d activity sets, want the one Activities", len(r.activities))
	}
	typ := reflect.TypeOf(r.activities[0])
	ctxType := reflect.TypeFor[context.Context]()
	errType := reflect.TypeFor[error]()
	for _, spec := range workflows.Activities() {
		m, ok := typ.MethodByName(spec.Name)
		if !ok {
			t.Errorf("the workflows call %s, which the worker does not register", spec.Name)
			continue
		}
		ft := m.Type // the receiver is the first argument
		if ft.NumIn() != 3 || ft.In(1) != ctxType || ft.In(2) != spec.Input {
			t.Errorf("%s takes %v, want (context.Context, %v)", spec.Name, ft, spec.Input)
		}
		var want []reflect.Type
		if spec.Result != nil {
			want = append(want, spec.Result)
		}
		want = append(want, errType)
		if ft.NumOut() != len(want) {
			t.Errorf("%s returns %d values, want %v", spec.Name, ft.NumOut(), want)
			continue
		}
		for i, w := range want {
			if ft.Out(i) != w {
				t.Errorf("%s returns %v at %d, want %v", spec.Name, ft.Out(i), i, w)
			}
		}
	}
	for _, want := range []any{workflows.Connection, workflows.Backfill} {
		found := false
		for _, w := range r.workflows {
			found = found || reflect.ValueOf(w).Pointer() == reflect.ValueOf(want).Pointer()
		}
		if !found {
			t.Errorf("workflow %T is not registered", want)
		}
	}
}

// TestRegisteringTheActivitiesSucceeds: every exported method of
// Activities is registered as an activity, so each must have an
// activity's shape (the SDK refuses the worker otherwise).
func TestRegisteringTheActivitiesSucceeds(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	w := sdkworker.New(c, "register-test", sdkworker.Options{})
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("the worker refused the activities: %v", r)
		}
	}()
	Register(&activities.Activities{})(w)
}

// TestBackfillIsRegisteredUnderItsName: the Backfill workflow is
// registered under workflows.BackfillWorkflowName, the name a repair looks
// for in a connection's history.
func TestBackfillIsRegisteredUnderItsName(t *testing.T) {
	var r registry
	Register(&activities.Activities{})(&r)
	// The name running histories already hold: the function's.
	if workflows.BackfillWorkflowName != "Backfill" || len(r.names) != 1 || r.names[0] != workflows.BackfillWorkflowName {
		t.Errorf("workflows registered by name: %q, want Backfill", r.names)
	}
}
