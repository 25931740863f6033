package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// benchmark is one of make bench's benchmarks. Each prints one JSON line,
// {"bench": name, ...figures}, on stdout and its details on stderr.
type benchmark struct {
	name string
	what string
	run  func(ctx context.Context, o benchOptions) error
}

// benchOptions are the command-line knobs of the benchmarks.
type benchOptions struct {
	connections   int           // idle-connections
	idle          time.Duration // idle-connections' window
	reconcile     time.Duration // idle-connections' reconciliation interval
	pushMailboxes int           // push-latency's mailboxes
	pushRate      float64       // push-latency's messages a second
	senders       int           // send-throughput's mailboxes
	sendWindow    time.Duration // send-throughput's window
	orgMailboxes  int           // org-backfill's tenant
	orgMessages   int           // org-backfill's messages per mailbox
	profiles      []string      // the stacks to run each benchmark on, in turn
}

var benchmarks = []benchmark{
	{"backfill", "engine backfill against a raw paging loop in the same run", goTestBench("./connect", "TestBenchBackfill")},
	{"backfill-throttled", "backfill under Graph's per-mailbox rate and concurrency, against the ceiling they allow", goTestBench("./connect", "TestBenchBackfillThrottled")},
	{"push-latency", "pushed mailboxes (100 at 50 msg/s unless told): injection to row in Postgres", func(ctx context.Context, o benchOptions) error {
		return pushLatency(ctx, o.pushMailboxes, o.pushRate, 20*time.Second)
	}},
	{"graph-budget", "the Graph budget shared by three processes through Postgres against each process's own, same run: requests per second and latency added per request", goTestBench("./activities", "TestBenchGraphBudget")},
	{"webhook-ingest", "notifications acknowledged per second and their latency", goTestBench("./webhook", "TestBenchWebhookIngest")},
	{"idle-connections", "10,000 idle connections: worker memory, timer lateness, history per day", func(ctx context.Context, o benchOptions) error {
		return idleConnections(ctx, o.connections, o.idle, o.reconcile)
	}},
	{"send-throughput", "100 mailboxes sending as fast as their rate allows (30 a minute): sent in the window against the ceiling, latency to sent", func(ctx context.Context, o benchOptions) error {
		return sendThroughput(ctx, o.senders, o.sendWindow)
	}},
	{"org-backfill", "one application connection over 2,000 mailboxes of 50 messages under all of Graph's limits: time to every mailbox running, backfill against a raw baseline in the same run, share answered 429, worker memory, history", func(ctx context.Context, o benchOptions) error {
		return orgBackfill(ctx, o.orgMailboxes, o.orgMessages, 0)
	}},
}

// goTestBench runs a Go test that prints a benchmark line (OUTLOOKD_BENCH=1)
// against the test stack, passing its JSON lines to stdout and the rest of
// its output to stderr.
func goTestBench(pkg, test string) func(context.Context, benchOptions) error {
	return func(ctx context.Context, _ benchOptions) error {
		stack, err := stackEnv()
		if err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-timeout=60m", "-run", "^"+test+"$", "-v", pkg)
		cmd.Env = append(os.Environ(), "OUTLOOKD_BENCH=1", "OUTLOOKD_REQUIRE_STACK=1")
		for k, v := range stack {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			return err
		}
		lines := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), `{"bench"`) {
				fmt.Println(sc.Text())
				lines++
			} else {
				fmt.Fprintln(os.Stderr, sc.Text())
			}
		}
		scanErr := sc.Err()
		_, _ = io.Copy(io.Discard, out) // let the test finish if a line was too long to scan
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("go test -run %s %s: %w", test, pkg, err)
		}
		if scanErr != nil {
			return fmt.Errorf("go test -run %s %s: reading its output: %w", test, pkg, scanErr)
		}
		if lines == 0 {
			return fmt.Errorf("go test -run %s %s printed no figures", test, pkg)
		}
		return nil
	}
}

// runBenchmarks runs the named benchmarks ("all": every one) in order.
func runBenchmarks(ctx context.Context, names []string, o benchOptions) error {
	if len(names) == 0 || len(names) == 1 && names[0] == "all" {
		names = nil
		for _, b := range benchmarks {
			names = append(names, b.name)
		}
	}
	var todo []benchmark
	for _, name := range names {
		found := false
		for _, b := range benchmarks {
			if b.name == name {
				todo, found = append(todo, b), true
			}
		}
		if !found {
			return fmt.Errorf("unknown benchmark %q", name)
		}
	}
	profiles := o.profiles
	if len(profiles) == 0 {
		profiles = []string{stackProfile()}
	}
	for _, b := range todo {
		// Each benchmark on each stack in turn, so that the figures of
		// both profiles come from the same run.
		for _, p := range profiles {
			if err := os.Setenv("OUTLOOKD_STACK_PROFILE", p); err != nil {
				return err
			}
			start := time.Now()
			fmt.Fprintf(os.Stderr, "bench %s (%s stack): %s\n", b.name, p, b.what)
			if err := b.run(ctx, o); err != nil {
				return fmt.Errorf("%s on the %s stack: %w", b.name, p, err)
			}
			fmt.Fprintf(os.Stderr, "bench %s (%s stack): done in %s\n", b.name, p, time.Since(start).Round(time.Second))
		}
	}
	return nil
}
