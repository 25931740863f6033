// Command scenario runs outlookd's named end-to-end scenarios (make
// scenario NAME=..., make scenarios): each starts from a clean state
// (a fresh database, Vault prefix and task queue on the test stack, its own
// graphsim and outlookd processes), drives the system only through the
// public API and graphsim's control API, and ends with one line:
//
//	scenario <name>: PASS lost=0 duplicated=0 leaks=0 <figures> wall=<s>
//
// or FAIL with the reason (and a non-zero exit). lost and duplicated
// compare Postgres with graphsim's ground truth; leaks counts the secrets
// graphsim issued found in any workflow history, log, table or API
// response of the scenario.
//
// "bench" runs make bench's benchmarks instead (all, or those named), each
// printing one JSON line on stdout and nothing else there.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	size := flag.Int("size", 20000, "messages in the connect-backfill mailbox")
	keep := flag.Bool("keep", false, "keep each scenario's processes' logs folder (.stack/scenarios/...)")
	var bo benchOptions
	flag.IntVar(&bo.connections, "connections", 10000, "idle-connections: how many")
	flag.DurationVar(&bo.idle, "idle", 20*time.Minute, "idle-connections: the idle window measured")
	flag.DurationVar(&bo.reconcile, "reconcile", 15*time.Minute, "idle-connections: the reconciliation interval standing for the default 6h")
	flag.IntVar(&bo.pushMailboxes, "push-mailboxes", 100, "push-latency: how many pushed mailboxes")
	flag.Float64Var(&bo.pushRate, "push-rate", 50, "push-latency: messages a second, spread over the mailboxes")
	flag.IntVar(&bo.senders, "send-mailboxes", 100, "send-throughput: how many mailboxes send")
	flag.DurationVar(&bo.sendWindow, "send-window", time.Minute, "send-throughput: the window measured (real time; the rate is per minute)")
	flag.IntVar(&bo.orgMailboxes, "org-mailboxes", 2000, "org-backfill: the tenant's mailboxes")
	flag.IntVar(&bo.orgMessages, "org-messages", 50, "org-backfill: messages per mailbox")
	flag.Func("profiles", "bench: the stacks to run each benchmark on in turn, comma-separated (test,cluster); default OUTLOOKD_STACK_PROFILE or test", func(v string) error {
		for p := range strings.SplitSeq(v, ",") {
			if p != "test" && p != "cluster" {
				return fmt.Errorf("unknown profile %q: test or cluster", p)
			}
			bo.profiles = append(bo.profiles, p)
		}
		return nil
	})
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./deploy/scenario [flags] all | NAME... | bench [all | NAME...]")
		fmt.Fprintln(os.Stderr, "scenarios:")
		for _, s := range scenarios {
			fmt.Fprintf(os.Stderr, "  %-22s %s\n", s.name, s.what)
		}
		fmt.Fprintln(os.Stderr, "benchmarks (one JSON line each on stdout):")
		for _, b := range benchmarks {
			fmt.Fprintf(os.Stderr, "  %-22s %s\n", b.name, b.what)
		}
		fmt.Fprintln(os.Stderr, "flags:")
		flag.PrintDefaults()
	}
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if len(names) == 1 && names[0] == "all" {
		names = nil
		for _, s := range scenarios {
			if clusterOnly[s.name] && stackProfile() != "cluster" {
				fmt.Fprintf(os.Stderr, "scenario %s runs on the cluster profile only (STACK_PROFILE=cluster): left out\n", s.name)
				continue
			}
			names = append(names, s.name)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The worlds run bin/outlookd: build it from this tree first, so that a
	// binary older than the code is never what gets measured.
	build := exec.CommandContext(ctx, "go", "build", "-o", "bin/outlookd", "./cmd/outlookd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build bin/outlookd:", err)
		os.Exit(1)
	}
	if names[0] == "bench" {
		if err := runBenchmarks(ctx, names[1:], bo); err != nil {
			fmt.Fprintln(os.Stderr, "bench", err)
			os.Exit(1)
		}
		return
	}
	failed := 0
	for _, name := range names {
		var sc *scenario
		for i := range scenarios {
			if scenarios[i].name == name {
				sc = &scenarios[i]
			}
		}
		if sc == nil {
			fmt.Fprintf(os.Stderr, "unknown scenario %q\n", name)
			flag.Usage()
			os.Exit(2)
		}
		if !runOne(ctx, sc, *size, *keep) {
			failed++
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// clusterOnly names the scenarios that need the cluster profile's
// replicas; `all` leaves them out on the test profile.
var clusterOnly = map[string]bool{"chaos-replicas": true}

// runOne runs a scenario in a fresh world and prints its line.
func runOne(ctx context.Context, sc *scenario, size int, keep bool) (ok bool) {
	start := time.Now()
	line := func(status, detail string) {
		fmt.Printf("scenario %s: %s %s wall=%.1fs\n", sc.name, status, detail, time.Since(start).Seconds())
	}
	opts := worlds[sc.name]
	opts.split, opts.cuttable = sc.split, sc.cuttable
	w, err := newWorldWith(ctx, sc.name, opts)
	if w != nil {
		defer func() {
			w.close()
			if ok && !keep {
				_ = os.RemoveAll(w.dir)
			}
		}()
	}
	if err != nil {
		line("FAIL", "could not start: "+err.Error())
		return false
	}
	var res result
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("%v", p)
			}
		}()
		res, err = sc.run(ctx, w, size)
	}()
	hits, secrets, where, lerr := w.leaks(ctx)
	detail := fmt.Sprintf("lost=%d duplicated=%d leaks=%d secrets_checked=%d %s", res.lost, res.dup, hits, secrets, strings.Join(res.figures, " "))
	switch {
	case err != nil:
		line("FAIL", detail+" ("+err.Error()+"; logs in "+w.dir+")")
	case lerr != nil:
		line("FAIL", detail+" (leak scan: "+lerr.Error()+")")
	case hits > 0:
		line("FAIL", detail+" (secrets found in: "+strings.Join(where, ", ")+")")
	case res.lost > 0 || res.dup > 0:
		line("FAIL", detail)
	default:
		line("PASS", detail)
		return true
	}
	return false
}
