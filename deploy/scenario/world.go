package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joho/godotenv"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
)

// world is one scenario's system: graphsim and outlookd as separate
// processes over the test stack (Temporal, Vault, Postgres), with a fresh
// database, Vault prefix and task queue of its own.
type world struct {
	name, id, dir string
	stack         map[string]string
	dbURL         string
	simURL        string
	apiURL        string
	sim           *graphsim.Client
	demo          struct {
		TenantID     string   `json:"tenantId"`
		ClientID     string   `json:"clientId"`
		ClientSecret string   `json:"clientSecret"`
		Users        []string `json:"users"`
	}
	key    string
	st     *store.Store
	vault  *vault.Client
	prefix string
	queue  string
	procs  map[string]*exec.Cmd
	simOpt []string
	env    []string
	extra  []string // more environment for outlookd

	// cut holds, in a world made with cuttable, the proxies outlookd
	// reaches Postgres ("postgres") and Vault ("vault") through: a scenario
	// cuts them to make a dependency vanish for outlookd alone (the test
	// stack's servers are shared and are never stopped).
	cut map[string]*testenv.Proxy

	// replicas, on the cluster profile, are the API replicas (behind a
	// balancer at apiURL) and the workers outlookd runs as.
	replicas *replicaSet

	mu        sync.Mutex
	responses bytes.Buffer // every API response body, for the leak scan
}

// worldOptions say how to build a world.
type worldOptions struct {
	split    bool     // the API and the worker as separate processes
	cuttable bool     // outlookd reaches Postgres and Vault through proxies (world.cut)
	env      []string // more environment for outlookd (KEY=value)
	simFlags []string // more flags for graphsim
}

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// stackEnv reads the environment file of the stack the scenarios run on.
func stackEnv() (map[string]string, error) {
	path := filepath.Join(".stack", stackProfile(), "env")
	env, err := godotenv.Read(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (is the %s stack up? make scenario starts it)", path, err, stackProfile())
	}
	return env, nil
}

// newWorld starts graphsim (with extra flags) and outlookd for a scenario:
// one process, or with split an API process and a worker process.
func newWorld(ctx context.Context, name string, split bool, simFlags ...string) (*world, error) {
	return newWorldEnv(ctx, name, split, nil, simFlags...)
}

// newWorldEnv is newWorld with extra environment for outlookd (KEY=value).
func newWorldEnv(ctx context.Context, name string, split bool, extraEnv []string, simFlags ...string) (*world, error) {
	return newWorldWith(ctx, name, worldOptions{split: split, env: extraEnv, simFlags: simFlags})
}

// newWorldWith builds a world as the options say.
func newWorldWith(ctx context.Context, name string, o worldOptions) (*world, error) {
	split := o.split
	w := &world{name: name, id: randomID(), procs: map[string]*exec.Cmd{}, simOpt: o.simFlags, extra: o.env}
	simFlags := o.simFlags
	w.dir = filepath.Join(".stack", "scenarios", name+"-"+w.id)
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return w, err
	}
	var err error
	if w.stack, err = stackEnv(); err != nil {
		return w, err
	}
	if o.cuttable {
		w.cut = map[string]*testenv.Proxy{}
		for dep, key := range map[string]string{"postgres": "DATABASE_URL", "vault": "VAULT_ADDR"} {
			u, err := url.Parse(w.stack[key])
			if err != nil || u.Host == "" {
				return w, fmt.Errorf("%s %q: no host to proxy", key, w.stack[key])
			}
			if w.cut[dep], err = testenv.StartProxy(u.Host); err != nil {
				return w, err
			}
		}
	}
	u, err := url.Parse(w.stack["DATABASE_URL"])
	if err != nil {
		return w, err
	}
	u.Path = "/outlookd_scn_" + strings.ReplaceAll(name, "-", "_") + "_" + w.id
	w.dbURL = u.String()
	w.prefix, w.queue = "outlookd/scn-"+w.id, "scn-"+w.id
	cmd := exec.CommandContext(ctx, "bin/outlookd", "migrate", "--create-database")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+w.dbURL)
	if out, err := cmd.CombinedOutput(); err != nil {
		return w, fmt.Errorf("migrate: %v: %s", err, out)
	}
	if w.st, err = store.Open(ctx, w.dbURL, 4); err != nil {
		return w, err
	}

	simAddr, apiAddr := freeAddr(), freeAddr()
	w.simURL, w.apiURL = "http://"+simAddr, "http://"+apiAddr
	info := filepath.Join(w.dir, "demo.json")
	// outlookd's receiver listens on plain http: graphsim must be told to
	// accept that, as Microsoft never would.
	args := append([]string{"sim", "--seed", "demo", "--auto-consent", "--addr", simAddr, "--messages", "40",
		"--redirect-uri", w.apiURL + "/v1/oauth/callback," + w.apiURL + "/v1/oauth/admin-callback", "--info-file", info, "--insecure-http-notifications"}, simFlags...)
	if err := w.start("graphsim", nil, args...); err != nil {
		return w, err
	}
	if err := waitFor(20*time.Second, func() error {
		raw, err := os.ReadFile(info)
		if err != nil || len(raw) == 0 {
			return fmt.Errorf("graphsim did not write %s", info)
		}
		return json.Unmarshal(raw, &w.demo)
	}); err != nil {
		return w, err
	}
	w.sim = graphsim.NewClient(w.simURL, nil)

	env := w.serveEnv(apiAddr)
	secret := exec.CommandContext(ctx, "bin/outlookd", "appsecret", "set")
	secret.Env, secret.Stdin = env, strings.NewReader(w.demo.ClientSecret+"\n")
	if out, err := secret.CombinedOutput(); err != nil {
		return w, fmt.Errorf("appsecret: %v: %s", err, out)
	}
	keyCmd := exec.CommandContext(ctx, "bin/outlookd", "apikey", "create", "--org", "scn-"+w.id, "--admin", "--connections-per-user", "1000")
	keyCmd.Env = env
	out, err := keyCmd.Output()
	if err != nil {
		return w, fmt.Errorf("apikey: %w", err)
	}
	w.key = strings.TrimSpace(string(out))
	w.env = env
	if stackProfile() == "cluster" {
		if err := w.startReplicas(apiAddr); err != nil {
			return w, err
		}
	} else if split {
		if err := w.start("outlookd", env, "serve", "--role", "api"); err != nil {
			return w, err
		}
		if err := w.startWorker(); err != nil {
			return w, err
		}
	} else if err := w.start("outlookd", env, "serve"); err != nil {
		return w, err
	}
	if err := waitReady(w.apiURL, 60*time.Second); err != nil {
		return w, fmt.Errorf("outlookd never became ready: %w", err)
	}
	w.vault, err = vault.New(vault.Options{Addr: w.stack["VAULT_ADDR"], RoleID: w.stack["OUTLOOKD_VAULT_ROLE_ID"],
		SecretIDFile: w.stack["OUTLOOKD_VAULT_SECRET_ID_FILE"], KVMount: "secret", Prefix: w.prefix, Timeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return w, err
	}
	go func() { _ = w.vault.Run(ctx) }()
	return w, waitFor(10*time.Second, func() error { return w.vault.Health(ctx) })
}

func (w *world) serveEnv(apiAddr string) []string {
	env := os.Environ()
	for k, v := range w.stack {
		env = append(env, k+"="+v)
	}
	dbURL := w.dbURL
	if p := w.cut["postgres"]; p != nil {
		u, _ := url.Parse(w.dbURL)
		u.Host = p.Addr()
		dbURL = u.String()
	}
	if p := w.cut["vault"]; p != nil {
		u, _ := url.Parse(w.stack["VAULT_ADDR"])
		u.Host = p.Addr()
		env = append(env, "VAULT_ADDR="+u.String())
	}
	if stackProfile() == "cluster" {
		// Four outlookd processes and the Temporal server share one
		// Postgres: the server's pools take up to about 50 connections,
		// and Postgres allows 100 by default. Sixteen each (the default)
		// ran it out under load (SQLSTATE 53300, a consent's exchange
		// refused); eight each leave room, and a pool that is busy waits
		// for a connection rather than fails.
		env = append(env, "OUTLOOKD_DATABASE_MAX_CONNS="+strconv.Itoa(clusterPoolSize))
	}
	return append(append(env,
		"DATABASE_URL="+dbURL,
		"OUTLOOKD_HTTP_ADDR="+apiAddr,
		"OUTLOOKD_PUBLIC_URL=http://"+apiAddr,
		"OUTLOOKD_VAULT_KV_PREFIX="+w.prefix,
		"OUTLOOKD_TASK_QUEUE="+w.queue,
		"OUTLOOKD_CLIENT_ID="+w.demo.ClientID,
		"OUTLOOKD_AUTHORITY_URL="+w.simURL,
		"OUTLOOKD_GRAPH_URL="+w.simURL+"/v1.0",
		"OUTLOOKD_LOG_FORMAT=json",
		"OUTLOOKD_PPROF_ADDR="+os.Getenv("OUTLOOKD_PPROF_ADDR"),
	), w.extra...)
}

// start runs a process with its output in the world's folder.
func (w *world) start(name string, env []string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(w.dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("bin/outlookd", args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.procs[name] = cmd
	go func() { _ = cmd.Wait(); logf.Close() }()
	return nil
}

// close stops the processes and drops the scenario's database.
func (w *world) close() {
	for _, p := range w.procs {
		if p.Process != nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, p := range w.procs {
		if p.Process != nil {
			_ = p.Process.Kill()
		}
	}
	if w.replicas != nil && w.replicas.lb != nil {
		w.replicas.lb.close()
	}
	for _, p := range w.cut {
		p.Down()
	}
	if w.st != nil {
		w.st.Close()
	}
	_ = store.DropDatabase(context.Background(), w.dbURL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if n, err := w.endWorkflows(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: ending its %d+ workflows: %v\n", w.name, n, err)
	}
}

// endWorkflows terminates the world's workflows still running. Left
// behind, with no worker, their timers keep firing into the shared dev
// server (thousands of them after a benchmark), which slows or stops it.
func (w *world) endWorkflows(ctx context.Context) (int, error) {
	tc, err := w.temporal()
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	ended := 0
	// The first page again each time: the ones ended leave the query.
	for {
		resp, err := tc.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default",
			Query: "TaskQueue = '" + w.queue + "' AND ExecutionStatus = 'Running'", PageSize: 1000})
		if err != nil {
			return ended, err
		}
		if len(resp.Executions) == 0 {
			return ended, nil
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for _, ex := range resp.Executions {
			g.Go(func() error {
				err := tc.TerminateWorkflow(gctx, ex.Execution.WorkflowId, ex.Execution.RunId, "the scenario's world is closed")
				var gone *serviceerror.NotFound
				if errors.As(err, &gone) {
					return nil
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return ended, err
		}
		ended += len(resp.Executions)
	}
}

// startWorker starts (or restarts) the worker process of a split world; its
// HTTP listener is on a port of its own, unused.
func (w *world) startWorker() error { return w.startWorkerN(0) }

// killWorker kills the worker process with SIGKILL and waits for it.
func (w *world) killWorker() { w.kill(workerName(0)) }

func waitFor(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call makes an API request as the app (admin key, app user "u"), keeping
// the response body for the leak scan.
func (w *world) call(method, path string, body any, out any) (int, error) {
	return w.callAs(defaultUser, method, path, body, out)
}

// defaultUser is the app user a scenario acts for unless it says otherwise.
const defaultUser = "u"

// callAs is call acting for another app user.
func (w *world) callAs(user, method, path string, body any, out any) (int, error) {
	st, raw, err := w.callRaw(user, method, path, body)
	if err != nil {
		return st, err
	}
	if out != nil && len(raw) > 0 && st < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return st, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return st, nil
}

// callRaw makes an API request acting for an app user and answers the
// status and the body, whatever the status (a problem's too).
func (w *world) callRaw(user, method, path string, body any) (int, []byte, error) {
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	st, _, out, err := w.callBytes(user, method, path, raw, nil)
	return st, out, err
}

// callBytes makes an API request with a JSON body already encoded (nil:
// none) and more request headers, and answers the status, the response's
// headers and its body.
func (w *world) callBytes(user, method, path string, body []byte, headers map[string]string) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, w.apiURL+path, rd)
	req.Header.Set("Authorization", "Bearer "+w.key)
	req.Header.Set("Outlookd-User", user)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	w.mu.Lock()
	w.responses.Write(raw)
	w.responses.WriteString(resp.Header.Get("Location") + "\n")
	w.mu.Unlock()
	return resp.StatusCode, resp.Header, raw, nil
}

var noRedirect = &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
