package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// On the cluster profile a world runs outlookd as a platform team does:
// API replicas behind a load balancer (the address the app, the browser
// and Graph's notifications use) and several workers on one task queue.
const clusterReplicas = 2

// clusterPoolSize is each outlookd process's Postgres pool on the cluster
// profile (OUTLOOKD_DATABASE_MAX_CONNS; serveEnv says why).
const clusterPoolSize = 8

// stackProfile is the stack the scenarios run on: test (the dev server) or
// cluster (a real Temporal server on PostgreSQL), from
// OUTLOOKD_STACK_PROFILE as the stack itself reads it.
func stackProfile() string {
	if p := os.Getenv("OUTLOOKD_STACK_PROFILE"); p != "" {
		return p
	}
	return "test"
}

// balancer spreads requests over the API replicas in turn, as a load
// balancer does. A replica that refuses the connection (it is down) is
// skipped and the next one tried; a request cut off after it reached a
// replica fails with 502, as it would behind a real balancer, and the
// app asks again.
type balancer struct {
	backends []string // host:port
	next     atomic.Uint64
	proxy    *httputil.ReverseProxy
	srv      *http.Server
	ln       net.Listener
	skipped  atomic.Int64 // attempts that found a replica down
}

func startBalancer(addr string, backends []string) (*balancer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &balancer{backends: backends, ln: ln}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = "http", "replica" // chosen per attempt
			r.SetXForwarded()
			r.Out.Host = r.In.Host
		},
		Transport:     b,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
		},
	}
	b.srv = &http.Server{Handler: b.proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

// RoundTrip sends the request to the replicas in turn, starting with the
// next one, until one takes the connection.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	start := b.next.Add(1)
	var errs []error
	for i := range len(b.backends) {
		out := req.Clone(req.Context())
		out.URL.Host = b.backends[(int(start)+i)%len(b.backends)]
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		}
		resp, err := balancerTransport.RoundTrip(out)
		if err == nil {
			return resp, nil
		}
		errs = append(errs, err)
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, err // it reached the replica: not safe to send again
		}
		b.skipped.Add(1)
	}
	return nil, fmt.Errorf("no replica took the connection: %w", errors.Join(errs...))
}

// balancerTransport opens a new connection for each request, so a killed
// replica's pooled connections are never reused.
var balancerTransport = &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext}

func (b *balancer) close() {
	_ = b.srv.Close()
}

// replicaSet is what a world on the cluster profile runs: its API
// replicas' listen addresses, and the process names of its replicas and
// workers.
type replicaSet struct {
	apiAddrs []string
	lb       *balancer
}

func apiName(i int) string { return fmt.Sprintf("api-%d", i) }

// workerName is the name of the i-th worker process ("worker" for the
// first, so the scenarios that kill and restart the worker act on it).
func workerName(i int) string {
	if i == 0 {
		return "worker"
	}
	return fmt.Sprintf("worker-%d", i)
}

// startAPI starts (or restarts) the i-th API replica.
func (w *world) startAPI(i int) error {
	env := append(append([]string(nil), w.env...), "OUTLOOKD_HTTP_ADDR="+w.replicas.apiAddrs[i])
	return w.start(apiName(i), env, "serve", "--role", "api")
}

// workerNames names the world's worker processes: "worker" alone on the
// test profile, one per replica on the cluster profile.
func (w *world) workerNames() []string {
	if w.replicas == nil {
		return []string{"worker"}
	}
	names := make([]string, clusterReplicas)
	for i := range names {
		names[i] = workerName(i)
	}
	return names
}

// startWorkerN starts (or restarts) the i-th worker; its HTTP listener is
// on a port of its own, unused. OUTLOOKD_WORKER_PPROF_ADDR, when set, is
// the first worker's profiler (OUTLOOKD_PPROF_ADDR goes to the API, which
// starts first).
func (w *world) startWorkerN(i int) error {
	env := append(append([]string(nil), w.env...), "OUTLOOKD_HTTP_ADDR="+freeAddr())
	if addr := os.Getenv("OUTLOOKD_WORKER_PPROF_ADDR"); addr != "" && i == 0 {
		env = append(env, "OUTLOOKD_PPROF_ADDR="+addr)
	}
	return w.start(workerName(i), env, "serve", "--role", "worker")
}

// kill kills one of the world's processes with SIGKILL and waits for it to
// be gone.
func (w *world) kill(name string) {
	p := w.procs[name]
	if p == nil || p.Process == nil {
		return
	}
	_ = p.Process.Signal(syscall.SIGKILL)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
	}
}

// startReplicas starts the API replicas behind the balancer at lbAddr and
// the workers, and waits until every replica is ready.
func (w *world) startReplicas(lbAddr string) error {
	w.replicas = &replicaSet{}
	for range clusterReplicas {
		w.replicas.apiAddrs = append(w.replicas.apiAddrs, freeAddr())
	}
	for i := range clusterReplicas {
		if err := w.startAPI(i); err != nil {
			return err
		}
		if err := w.startWorkerN(i); err != nil {
			return err
		}
	}
	for _, a := range w.replicas.apiAddrs {
		if err := waitReady("http://"+a, 60*time.Second); err != nil {
			return fmt.Errorf("API replica %s never became ready: %w", a, err)
		}
	}
	lb, err := startBalancer(lbAddr, w.replicas.apiAddrs)
	if err != nil {
		return err
	}
	w.replicas.lb = lb
	return nil
}

// waitReady waits until an outlookd process answers /readyz with 200.
func waitReady(base string, d time.Duration) error {
	return waitFor(d, func() error {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
}
