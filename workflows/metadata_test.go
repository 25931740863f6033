package workflows

import (
	"strings"
	"testing"
	"time"

	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

// currentDetails reads the details the Temporal UI shows, as it does: by
// the workflow metadata query.
func currentDetails(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	if err != nil {
		t.Fatal(err)
	}
	var md sdkpb.WorkflowMetadata
	if err := v.Get(&md); err != nil {
		t.Fatal(err)
	}
	return md.GetCurrentDetails()
}

// TestCurrentDetailsFollowTheState: an operator sees in the Temporal UI the
// connection's state, reason, mailbox and sync mode as they change, and
// never a consent reference or a token.
func TestCurrentDetailsFollowTheState(t *testing.T) {
	env, f := newEnv(t)
	dead := temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"revoked", "The user's sessions were revoked."})
	steps := []struct {
		at      time.Duration
		want    []string
		wantNot []string
	}{
		{at: 30 * time.Second, want: []string{"**State** pending_consent", "**Kind** delegated", "**mailbox** -"}, wantNot: []string{"sync"}},
		{at: 2 * time.Hour, want: []string{"**State** active", "**mailbox** ada@contoso.example", "**sync** push"}},
		{at: 4 * 24 * time.Hour, want: []string{"**State** reauth_required", "**reason** revoked", "sessions were revoked", "**mailbox** ada@contoso.example"}},
	}
	for _, s := range steps {
		env.RegisterDelayedCallback(func() {
			got := currentDetails(t, env)
			for _, w := range s.want {
				if !strings.Contains(got, w) {
					t.Errorf("at %v: %q not in the details %q", s.at, w, got)
				}
			}
			for _, w := range append(s.wantNot, "ref-0123456789", "token") {
				if strings.Contains(got, w) {
					t.Errorf("at %v: %q in the details %q", s.at, w, got)
				}
			}
		}, s.at)
	}
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() { f.refresh = func() (RefreshResult, error) { return RefreshResult{}, dead } }, 3*time.Hour)
	endWith(env, 5*24*time.Hour, func() {})
	env.ExecuteWorkflow(Connection, input())
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

func TestSummaries(t *testing.T) {
	tests := []struct {
		name, got string
		want      []string
	}{
		{"connection", ConnectionSummary("conn_x", ModeDelegated, "", StatePendingConsent), []string{"conn_x", "delegated", "started pending_consent"}},
		{"clean-up", ConnectionSummary("conn_x", ModeServiceAccount, "svc@contoso.example", StateDisconnecting), []string{"svc@contoso.example", "started disconnecting"}},
		{"details", ConnectionDetails("conn_x", "acme", "u-1", ModeDelegated, "", StatePendingConsent), []string{"acme", "u-1", QueryStatus, `ConnectionId = "conn_x"`}},
		{"mailbox", MailboxSummary("mbx_1", "conn_x", "shared@contoso.example"), []string{"mbx_1", "conn_x", "shared@contoso.example"}},
		{"send", SendSummary(SendInput{SendID: "snd_1", ConnectionID: "conn_x", MailboxID: "mbx_1", Recipients: 3}), []string{"snd_1", "conn_x", "mbx_1", "3 recipients"}},
	}
	for _, tt := range tests {
		for _, w := range tt.want {
			if !strings.Contains(tt.got, w) {
				t.Errorf("%s: %q not in %q", tt.name, w, tt.got)
			}
		}
		if strings.Contains(tt.got, "\n") && tt.name != "details" {
			t.Errorf("%s: a summary is one line: %q", tt.name, tt.got)
		}
	}
}
