package workflows

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// adminRefusal is the consent the callback hands over when Microsoft
// answers the sign-in with AADSTS90094.
var adminRefusal = ConsentInput{Reason: ReasonAdminConsentRequired, ReasonText: "An administrator of the organisation must approve the app before its users can connect."}

// TestAdminConsentRequired: a sign-in refused because the tenant requires
// an administrator's approval leaves the connection in
// admin_consent_required (the registry, the search attribute and one
// event say so, however often the user tries again before the admin
// consents); once the tenant has consented, the next sign-in connects.
func TestAdminConsentRequired(t *testing.T) {
	tests := []struct {
		name string
		// refuse makes the first sign-in fail: at the redirect (the
		// callback hands a reason over) or at the code's redemption.
		refuse func(t *testing.T, env *testsuite.TestWorkflowEnvironment, f *fakes)
	}{
		{"refused at the redirect", func(t *testing.T, env *testsuite.TestWorkflowEnvironment, f *fakes) {
			update(t, env, UpdateConsent, adminRefusal, nil)
			// The user tries again before the admin consented.
			update(t, env, UpdateConsent, adminRefusal, nil)
		}},
		{"refused at the code's redemption", func(t *testing.T, env *testsuite.TestWorkflowEnvironment, f *fakes) {
			ok, refused := f.exchange, false
			f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
				if refused {
					return ok(in)
				}
				refused = true
				return ExchangeCodeResult{}, temporal.NewNonRetryableApplicationError("refused", ErrConsentFailed, nil,
					struct{ Reason, Text string }{ReasonAdminConsentRequired, "An administrator must approve."})
			}
			update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, f := newEnv(t)
			e := env
			var states []string
			env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
				if sa, ok := args.Get(0).(temporal.SearchAttributes); ok {
					if s, ok := sa.GetKeyword(SAConnectionState); ok && (len(states) == 0 || states[len(states)-1] != s) {
						states = append(states, s)
					}
				}
			}).Return(nil)
			env.RegisterDelayedCallback(func() { tt.refuse(t, env, f) }, time.Minute)
			env.RegisterDelayedCallback(func() {
				st := query(t, e)
				if st.State != StateAdminConsentRequired || st.Reason != ReasonAdminConsentRequired || st.ReasonText == "" {
					t.Errorf("after the refusal: %s %q %q", st.State, st.Reason, st.ReasonText)
				}
				if st.NextAction == "" {
					t.Error("no next action in admin_consent_required")
				}
				// Resync and the like are refused; a new sign-in is taken.
				update(t, e, UpdateResync, ResyncInput{}, func(_ Status, err error) {
					if err == nil {
						t.Error("a resync was accepted in admin_consent_required")
					}
				})
				update(t, e, UpdateConsent, ConsentInput{Ref: "ref-abcdefghij"}, func(st Status, err error) {
					if err != nil || st.State != StateActive || st.Mailbox != "ada@contoso.example" {
						t.Errorf("the sign-in after the admin consent: %s %v", st.State, err)
					}
				})
			}, 2*24*time.Hour)
			endWith(env, 3*24*time.Hour, func() {
				if st := query(t, e); st.State != StateActive || st.Reason != "" {
					t.Errorf("at the end: %s %q", st.State, st.Reason)
				}
			})
			env.ExecuteWorkflow(Connection, input())
			if want := []string{StateAdminConsentRequired, StateActive, StateDisconnecting, StateDisconnected}; !slices.Equal(f.recorded, want) {
				t.Errorf("registry states %v, want %v", f.recorded, want)
			}
			if n := count(f.events, "connection.admin_consent_required"); n != 1 {
				t.Errorf("%d connection.admin_consent_required events (%v), want 1", n, f.events)
			}
			if !slices.Contains(states, StateAdminConsentRequired) || states[len(states)-1] != StateDisconnected {
				t.Errorf("ConnectionState upserts %v", states)
			}
		})
	}
}

// TestAdminConsentRemovedAtReauth: a connection whose tokens died signs in
// again into a tenant that now requires admin consent; after the consent,
// the same account's sign-in resumes it (the exchange still insists on the
// same user).
func TestAdminConsentRemovedAtReauth(t *testing.T) {
	env, f := newEnv(t)
	dead := temporal.NewNonRetryableApplicationError("dead", ErrReauthRequired, nil, struct{ Reason, Text string }{"consent_revoked", "The consent was removed."})
	f.refresh = func() (RefreshResult, error) { return RefreshResult{}, dead }
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil) }, time.Minute)
	var exchangeIn ExchangeCodeInput
	env.RegisterDelayedCallback(func() {
		if st := query(t, env); st.State != StateReauthRequired {
			t.Errorf("after the consent was removed: %s", st.State)
		}
		update(t, env, UpdateConsent, adminRefusal, func(st Status, err error) {
			if err != nil || st.State != StateAdminConsentRequired {
				t.Errorf("the sign-in refused for admin consent: %s %v", st.State, err)
			}
		})
	}, 4*24*time.Hour)
	env.RegisterDelayedCallback(func() {
		f.refresh = func() (RefreshResult, error) { return RefreshResult{AccessExpiry: time.Now().Add(time.Hour)}, nil }
		f.exchange = func(in ExchangeCodeInput) (ExchangeCodeResult, error) {
			exchangeIn = in
			return ExchangeCodeResult{UserID: "u-1", Mailbox: "ada@contoso.example", TenantID: "t-1", GrantedScopes: []string{"Mail.Read"}, Granted: Features{Read: true}}, nil
		}
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-abcdefghij"}, func(st Status, err error) {
			if err != nil || st.State != StateActive {
				t.Errorf("the sign-in after the admin consent: %s %v", st.State, err)
			}
		})
	}, 5*24*time.Hour)
	endWith(env, 6*24*time.Hour, func() {
		if st := query(t, env); st.State != StateActive || st.Backfill.Runs != 1 {
			t.Errorf("after the admin consent: %s, %d backfills", st.State, st.Backfill.Runs)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if exchangeIn.ExpectUserID != "u-1" {
		t.Errorf("the sign-in after the admin consent did not require the same account: %+v", exchangeIn)
	}
	if want := []string{"connection.active", "connection.reauth_required", "connection.admin_consent_required", "connection.active"}; !inOrder(f.events, want) {
		t.Errorf("events %v, want %v in that order", f.events, want)
	}
}

// TestDisconnectWhileAdminConsentRequired: a connection waiting for an
// admin consent disconnects cleanly.
func TestDisconnectWhileAdminConsentRequired(t *testing.T) {
	env, f := newEnv(t)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, adminRefusal, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateDisconnect, nil, nil) }, time.Hour)
	env.ExecuteWorkflow(Connection, input())
	var res ConnectionResult
	if err := env.GetWorkflowResult(&res); err != nil || res.State != StateDisconnected {
		t.Fatalf("result %+v %v", res, err)
	}
	if want := []string{StateAdminConsentRequired, StateDisconnecting, StateDisconnected}; !slices.Equal(f.recorded, want) {
		t.Errorf("registry states %v, want %v", f.recorded, want)
	}
}

func TestRefusedTo(t *testing.T) {
	for _, tt := range []struct{ from, reason, want string }{
		{StatePendingConsent, ReasonAdminConsentRequired, StateAdminConsentRequired},
		{StateReauthRequired, ReasonAdminConsentRequired, StateAdminConsentRequired},
		{StateAdminConsentRequired, ReasonAdminConsentRequired, StateAdminConsentRequired},
		{StatePendingConsent, "consent_declined", StatePendingConsent},
		{StateAdminConsentRequired, "consent_declined", StateAdminConsentRequired},
		{StateReauthRequired, "wrong_account", StateReauthRequired},
	} {
		if got := refusedTo(tt.from, tt.reason); got != tt.want {
			t.Errorf("refusedTo(%s, %s) = %s, want %s", tt.from, tt.reason, got, tt.want)
		}
	}
}

func count(xs []string, x string) (n int) {
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// inOrder says whether want appears in xs in order (not necessarily
// next to each other).
func inOrder(xs, want []string) bool {
	i := 0
	for _, x := range xs {
		if i < len(want) && x == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestAdminConsentRefusalBeforeTheState: a run that met the refusal
// before admin_consent_required existed (GetVersion answers the default
// version on its replay) keeps its state with the reason, as it did.
func TestAdminConsentRefusalBeforeTheState(t *testing.T) {
	env, f := newEnv(t)
	// A run from before both changes: it asks each where it did.
	env.OnGetVersion("connection-versions-at-once", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.OnGetVersion("admin-consent-state", workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	env.RegisterDelayedCallback(func() { update(t, env, UpdateConsent, adminRefusal, nil) }, time.Minute)
	endWith(env, time.Hour, func() {
		if st := query(t, env); st.State != StatePendingConsent || st.Reason != ReasonAdminConsentRequired {
			t.Errorf("the old run: %s %q", st.State, st.Reason)
		}
	})
	env.ExecuteWorkflow(Connection, input())
	if slices.Contains(f.events, "connection.admin_consent_required") {
		t.Errorf("the old run told the app: %v", f.events)
	}
}
