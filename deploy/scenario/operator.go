package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// operatorCancel is what an operator does without reading the code: one
// connection's workflow is cancelled and another's terminated with the
// Temporal CLI while mail arrives. Both end disconnected (the cancelled
// one by itself, the terminated one once disconnected through the API),
// with no subscription delivering and nothing in Vault, and both
// mailboxes connect again. A fourth, terminated too, is repaired with
// `outlookd connections repair` and syncs on without loss.
func operatorCancel(ctx context.Context, w *world, _ int) (result, error) {
	var r result
	const alex, megan = "alex@contoso.example", "megan@contoso.example"
	a, err := w.connect(adele, nil)
	if err != nil {
		return r, err
	}
	b, err := w.connect(alex, nil)
	if err != nil {
		return r, err
	}
	for _, u := range []string{adele, alex} {
		if _, err := w.sim.InjectMessages(ctx, u, make([]graphsim.MessageSpec, 3)...); err != nil {
			return r, err
		}
	}

	// Cancel: the workflow disconnects itself.
	start := time.Now()
	if err := w.temporalCLI(ctx, "workflow", "cancel", "--workflow-id", workflows.ConnectionWorkflowID(a.ID)); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, adele, make([]graphsim.MessageSpec, 2)...); err != nil {
		return r, err
	}
	ca, err := w.waitConn(a.ID, time.Minute, "disconnected after cancel", func(c conn) bool { return c.State == "disconnected" })
	if err != nil {
		return r, err
	}
	r.add("cancel_to_disconnected_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	if n := w.events(ca.ID, "connection.disconnected"); n != 1 {
		return r, fmt.Errorf("cancelled connection: %d disconnected events, want 1", n)
	}

	// Terminate: nothing runs; the API says so, and a disconnect cleans up.
	if err := w.temporalCLI(ctx, "workflow", "terminate", "--workflow-id", workflows.ConnectionWorkflowID(b.ID), "--reason", "operator-cancel scenario"); err != nil {
		return r, err
	}
	tb, err := w.waitConn(b.ID, 30*time.Second, "reported ended", func(c conn) bool { return c.Reason == workflows.ReasonWorkflowEnded })
	if err != nil {
		return r, err
	}
	r.add("terminated_shown_as", tb.State+"/"+tb.Reason)
	if st, err := w.call("DELETE", "/v1/connections/"+b.ID, nil, nil); err != nil || st != 202 {
		return r, fmt.Errorf("DELETE of a terminated connection: %d %v", st, err)
	}
	if _, err := w.waitConn(b.ID, time.Minute, "disconnected after terminate", func(c conn) bool { return c.State == "disconnected" }); err != nil {
		return r, err
	}
	// Asked again, the answer is where it stands: disconnected, no new run.
	var again conn
	if st, err := w.call("DELETE", "/v1/connections/"+b.ID, nil, &again); err != nil || st != 202 || again.State != "disconnected" {
		return r, fmt.Errorf("a second DELETE: %d %q %v", st, again.State, err)
	}

	// The operator's command does the same for a third, terminated too.
	m, err := w.connect(megan, nil)
	if err != nil {
		return r, err
	}
	if err := w.temporalCLI(ctx, "workflow", "terminate", "--workflow-id", workflows.ConnectionWorkflowID(m.ID), "--reason", "operator-cancel scenario"); err != nil {
		return r, err
	}
	cmd := exec.CommandContext(ctx, "bin/outlookd", "disconnect", m.ID)
	cmd.Env = w.env
	if out, err := cmd.CombinedOutput(); err != nil {
		return r, fmt.Errorf("outlookd disconnect: %v: %s", err, out)
	}
	if _, err := w.waitConn(m.ID, time.Minute, "disconnected by the command", func(c conn) bool { return c.State == "disconnected" }); err != nil {
		return r, err
	}

	// Repair: a fourth, terminated while mail arrives, is taken up again
	// by the operator's command through the API and goes on from where it
	// was: the mail that came meanwhile is synced, none twice.
	const lynne = "lynne@contoso.example"
	if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: lynne, DisplayName: "Lynne Robbins"}); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, lynne, make([]graphsim.MessageSpec, 3)...); err != nil {
		return r, err
	}
	l, err := w.connect(lynne, nil)
	if err != nil {
		return r, err
	}
	if err := w.temporalCLI(ctx, "workflow", "terminate", "--workflow-id", workflows.ConnectionWorkflowID(l.ID), "--reason", "operator-cancel scenario"); err != nil {
		return r, err
	}
	if _, err := w.sim.InjectMessages(ctx, lynne, make([]graphsim.MessageSpec, 4)...); err != nil {
		return r, err
	}
	if _, err := w.waitConn(l.ID, 30*time.Second, "reported ended", func(c conn) bool { return c.Reason == workflows.ReasonWorkflowEnded }); err != nil {
		return r, err
	}
	opEnv := append(append([]string{}, w.env...), "OUTLOOKD_API_URL="+w.apiURL, "OUTLOOKD_API_KEY="+w.key)
	outlookd := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "bin/outlookd", args...)
		cmd.Env = opEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("outlookd %v: %v: %s", args, err, out)
		}
		return string(out), nil
	}
	if out, err := outlookd("connections", "list", "--state", "active"); err != nil || !strings.Contains(out, l.ID) {
		return r, fmt.Errorf("connections list: %v %s", err, out)
	}
	start = time.Now()
	if _, err := outlookd("connections", "repair", l.ID); err != nil {
		return r, err
	}
	lr, err := w.waitConn(l.ID, 30*time.Second, "running again", func(c conn) bool { return c.Reason != workflows.ReasonWorkflowEnded && c.State == "active" })
	if err != nil {
		return r, err
	}
	lost, dup, err := w.converge(ctx, lr, lynne, time.Minute)
	r.lost, r.dup = r.lost+lost, r.dup+dup
	if err != nil {
		return r, fmt.Errorf("after the repair: %w", err)
	}
	r.add("repair_to_synced_s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	if _, err := outlookd("connections", "repair", l.ID); err == nil || !strings.Contains(err.Error(), "workflow_running") {
		return r, fmt.Errorf("a second repair: %v", err)
	}
	if _, err := outlookd("connections", "disconnect", l.ID); err != nil {
		return r, err
	}
	if _, err := w.waitConn(l.ID, time.Minute, "disconnected by the command", func(c conn) bool { return c.State == "disconnected" }); err != nil {
		return r, err
	}

	// Nothing left: Vault, mail (retention delete), delivering subscriptions.
	for _, id := range []string{a.ID, b.ID, m.ID, l.ID} {
		if n, err := w.vault.Tokens().Count(ctx, id); err != nil || n != 0 {
			return r, fmt.Errorf("%s: %d secrets left in Vault (%v)", id, n, err)
		}
		if n, err := w.st.CountMessages(ctx, id); err != nil || n != 0 {
			return r, fmt.Errorf("%s: %d messages left (%v)", id, n, err)
		}
	}
	if n := delivering(ctx, w); n != 0 {
		return r, fmt.Errorf("%d subscriptions still delivering", n)
	}

	// The same mailboxes connect again, and sync.
	for _, u := range []string{adele, alex} {
		c, err := w.connect(u, nil)
		if err != nil {
			return r, fmt.Errorf("reconnect %s: %w", u, err)
		}
		lost, dup, err := w.converge(ctx, c, u, time.Minute)
		r.lost, r.dup = r.lost+lost, r.dup+dup
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

// delivering counts the subscriptions at Graph that still deliver.
func delivering(ctx context.Context, w *world) int {
	n := 0
	for _, s := range must(w.sim.Subscriptions(ctx)) {
		if s.Expiration.After(time.Now()) && !s.NeedsReauth {
			n++
		}
	}
	return n
}

// temporalCLI runs the Temporal CLI against the test stack, as an
// operator would.
func (w *world) temporalCLI(ctx context.Context, args ...string) error {
	cli := w.stack["OUTLOOKD_TEMPORAL_CLI"]
	if cli == "" {
		return fmt.Errorf("the stack's environment names no Temporal CLI (OUTLOOKD_TEMPORAL_CLI); run the stack's up again")
	}
	args = append(args, "--address", w.stack["TEMPORAL_ADDRESS"], "--namespace", "default")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("temporal %v: %v: %s", args, err, out)
	}
	return nil
}
