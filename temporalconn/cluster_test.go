package temporalconn_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/types/known/durationpb"

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

// freshNamespace registers a namespace of its own, so that adding search
// attributes touches nothing other tests share.
func freshNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	ns := "outlookd-setup-" + hex.EncodeToString(randBytes(t, 4))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.WorkflowService().RegisterNamespace(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace: ns, WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.OperatorService().DeleteNamespace(ctx, &operatorservice.DeleteNamespaceRequest{Namespace: ns}); err != nil {
			t.Logf("delete namespace %s: %v", ns, err)
		}
	})
	// A new namespace reaches the frontend's cache after a moment.
	for {
		if _, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: ns}); err == nil {
			return ns
		} else if ctx.Err() != nil {
			t.Fatalf("namespace %s never became usable: %v", ns, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSearchAttributesOnAFreshNamespace(t *testing.T) {
	c, _ := dial(t, "default")
	ns := freshNamespace(t, c)
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
