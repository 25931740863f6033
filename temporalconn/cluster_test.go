package temporalconn_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/temporalconn"
	"github.com/outlookd/outlookd/workflows"
)

// dial connects to the test stack's Temporal through Load, as outlookd does.
func dial(t *testing.T, namespace string) (client.Client, temporalconn.Profile) {
	t.Helper()
	addr := testenv.Temporal(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	p, err := temporalconn.Load([]string{"TEMPORAL_ADDRESS=" + addr, "TEMPORAL_NAMESPACE=" + namespace})
	if err != nil {
		t.Fatal(err)
	}
	opts, err := p.ClientOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	return c, p
}

func TestDialTheStack(t *testing.T) {
	c, p := dial(t, "default")
	if p.TLS || p.APIKey {
		t.Fatalf("the test stack is plaintext without a key: %+v", p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		t.Fatal(err)
	}
	// The default namespace of the stack carries outlookd's attributes.
	if err := temporalconn.CheckSearchAttributes(ctx, c.OperatorService(), p.Namespace, workflows.SearchAttributes); err != nil {
		t.Fatal(err)
	}
}

func TestSearchAttributesOnAFreshNamespace(t *testing.T) {
	_, ns := testenv.TemporalNamespace(t)
	c, _ := dial(t, ns)
	oc := c.OperatorService()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Before setup: a worker would be refused, every attribute named.
	err := temporalconn.CheckSearchAttributes(ctx, oc, ns, workflows.SearchAttributes)
	var missing *temporalconn.MissingAttributesError
	if !errors.As(err, &missing) || len(missing.Missing) != len(workflows.SearchAttributes) {
		t.Fatalf("check before setup = %v, want all %d missing", err, len(workflows.SearchAttributes))
	}
	for _, want := range []string{"ConnectionState (Keyword)", "outlookd setup", ns} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}

	// Setup adds them all, then finds them all present.
	for round, outcome := range []temporalconn.Outcome{temporalconn.Added, temporalconn.Present} {
		res, err := temporalconn.EnsureSearchAttributes(ctx, oc, ns, workflows.SearchAttributes)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(res) != len(workflows.SearchAttributes) {
			t.Fatalf("round %d: %d results", round, len(res))
		}
		for _, r := range res {
			if r.Outcome != outcome {
				t.Errorf("round %d: %s %s, want %s", round, r.Name, r.Outcome, outcome)
			}
		}
	}
	if err := temporalconn.CheckSearchAttributes(ctx, oc, ns, workflows.SearchAttributes); err != nil {
		t.Fatalf("check after setup: %v", err)
	}

	// An attribute there with another type is an error, and nothing else of
	// the request is added.
	other := []temporal.SearchAttributeKey{temporal.NewSearchAttributeKeyString("Mailbox"), temporal.NewSearchAttributeKeyKeyword("OutlookdSetupProbe")}
	_, err = temporalconn.EnsureSearchAttributes(ctx, oc, ns, other)
	if !errors.As(err, &missing) || len(missing.WrongType) != 1 || !strings.Contains(err.Error(), "Mailbox is Keyword, want Text") {
		t.Fatalf("ensure with a wrong type = %v", err)
	}
	resp, err := oc.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.GetCustomAttributes()["OutlookdSetupProbe"]; ok {
		t.Error("an attribute was added although another had the wrong type")
	}
}
