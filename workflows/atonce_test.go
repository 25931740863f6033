package workflows

import (
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// attrsProbe upserts what changedAttrs gives for want (name and value
// pairs) and answers how many updates that was and the workflow's
// attributes after them.
func attrsProbe(ctx workflow.Context, want [][2]string, onlyChanged bool) (attrsSeen, error) {
	kws := make([]keyword, len(want))
	for i, w := range want {
		kws[i] = keyword{temporal.NewSearchAttributeKeyKeyword(w[0]), w[1]}
	}
	updates := changedAttrs(ctx, kws, onlyChanged)
	if len(updates) > 0 {
		if err := workflow.UpsertTypedSearchAttributes(ctx, updates...); err != nil {
			return attrsSeen{}, err
		}
	}
	have := workflow.GetTypedSearchAttributes(ctx)
	seen := attrsSeen{Updates: len(updates), Values: map[string]string{}}
	for _, k := range SearchAttributes {
		if v, ok := have.GetKeyword(k.(temporal.SearchAttributeKeyKeyword)); ok {
			seen.Values[k.GetName()] = v
		}
	}
	return seen, nil
}

type attrsSeen struct {
	Updates int
	Values  map[string]string
}

// TestChangedAttrs: a run since connection-versions-at-once upserts only
// the search attributes that differ from those it was started with (none
// when it was started with them all); a run before upserts them all; either
// way the workflow ends with the values the state calls for.
func TestChangedAttrs(t *testing.T) {
	pending := searchAttrs("conn_1", StatePendingConsent, ModeDelegated, "", "", "")
	active := searchAttrs("conn_1", StateActive, ModeDelegated, "tenant-1", "ada@contoso.example", SyncPush)
	tests := []struct {
		name        string
		start       []keyword
		want        []keyword
		onlyChanged bool
		updates     int
	}{
		{"started with them, nothing changed", pending, pending, true, 0},
		{"started with them, a run before the change", pending, pending, false, 3},
		{"connected: state, tenant, mailbox and sync mode", pending, active, true, 4},
		{"started without them", nil, active, true, 6},
		{"a mailbox started as it sets them", searchAttrs("conn_1", StateActive, ModeApplication, "tenant-1", "bo@contoso.example", ""),
			searchAttrs("conn_1", StateActive, ModeApplication, "tenant-1", "bo@contoso.example", SyncPolling), true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflow(attrsProbe)
			if tt.start != nil {
				if err := env.SetTypedSearchAttributesOnStart(typed(tt.start)); err != nil {
					t.Fatal(err)
				}
			}
			want := make([][2]string, len(tt.want))
			for i, kw := range tt.want {
				want[i] = [2]string{kw.key.GetName(), kw.val}
			}
			env.ExecuteWorkflow(attrsProbe, want, tt.onlyChanged)
			if err := env.GetWorkflowError(); err != nil {
				t.Fatal(err)
			}
			var got attrsSeen
			if err := env.GetWorkflowResult(&got); err != nil {
				t.Fatal(err)
			}
			if got.Updates != tt.updates {
				t.Errorf("%d updates, want %d", got.Updates, tt.updates)
			}
			for _, kw := range tt.want {
				if got.Values[kw.key.GetName()] != kw.val {
					t.Errorf("%s = %q, want %q", kw.key.GetName(), got.Values[kw.key.GetName()], kw.val)
				}
			}
		})
	}
}
