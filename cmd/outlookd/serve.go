package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"
	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/config"
	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/mailreader"
	"github.com/outlookd/outlookd/metrics"
	"github.com/outlookd/outlookd/outbox"
	"github.com/outlookd/outlookd/retention"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/temporalconn"
	"github.com/outlookd/outlookd/tracing"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/webhook"
	"github.com/outlookd/outlookd/worker"
	"github.com/outlookd/outlookd/workflows"
)

// Roles a serve process can take.
const (
	roleAll    = "all"
	roleAPI    = "api"
	roleWorker = "worker"
)

func serve(ctx context.Context, args []string, stderr io.Writer, environ []string) error {
	fs := newFlagSet("serve", stderr)
	role := fs.String("role", roleAll, "what this process runs: all (API and worker), api, or worker")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *role != roleAll && *role != roleAPI && *role != roleWorker {
		fmt.Fprintf(stderr, "outlookd serve: --role must be all, api or worker, not %q\n", *role)
		return usageError{fmt.Errorf("bad role %q", *role)}
	}
	cfg, err := config.LoadFrom(environ)
	if err != nil {
		return err
	}
	prof, err := temporalconn.Load(environ)
	if err != nil {
		return err
	}
	if err := cfg.ValidateVaultAuth(); err != nil {
		return err
	}
	if *role != roleWorker {
		if err := cfg.ValidateAPI(); err != nil {
			return err
		}
	}
	log := newLogger(cfg, stderr)
	log.Info("outlookd starting", "version", versionString(), "role", *role,
		"http_addr", cfg.HTTPAddr, "temporal", prof, "vault", cfg.VaultAddr.String())
	if prof.SkipVerify {
		log.Warn("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION is set: Temporal's certificate is not verified; for tests only")
	}

	tr, err := tracing.Setup(ctx, environ, versionString(), stderr)
	if err != nil {
		return err
	}
	if tr.Enabled() {
		log.Info("tracing on", "exporters", tr.Exporters)
	}
	defer func() {
		// Spans still buffered are flushed, within a bound.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("traces not flushed", "err", err)
		}
	}()

	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal(), cfg.DatabaseMaxConns)
	if err != nil {
		return err
	}
	defer st.Close()

	vc, err := vault.New(vault.Options{
		Addr:         cfg.VaultAddr.String(),
		Token:        cfg.VaultToken.Reveal(),
		RoleID:       cfg.VaultRoleID,
		SecretIDFile: cfg.VaultSecretIDFile,
		KVMount:      cfg.VaultKVMount,
		Prefix:       cfg.VaultKVPrefix,
		Timeout:      10 * time.Second,
		Logger:       log.With("component", "vault"),
	})
	if err != nil {
		return err
	}

	// A lazy client connects on first use, so the process starts (and /readyz
	// says what is missing) while Temporal is still coming up.
	topts, err := prof.ClientOptions(log.With("component", "temporal"))
	if err != nil {
		return err
	}
	if cfg.TemporalCompression == "none" {
		topts.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	var mx *metrics.Metrics
	if cfg.MetricsAddr != "" {
		mx = metrics.New()
		defer mx.Close()
		topts.MetricsHandler = mx.TemporalHandler(log.With("component", "metrics"))
		registerCounts(mx, st)
		mux := http.NewServeMux()
		mux.Handle("/metrics", mx.Handler())
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("OUTLOOKD_METRICS_ADDR: listen on %s: %w", cfg.MetricsAddr, err)
		}
		msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		log.Info("metrics listening", "addr", ln.Addr().String())
		go func() { _ = msrv.Serve(ln) }()
		defer msrv.Close()
	}
	ti, err := tr.TemporalInterceptor()
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	if ti != nil {
		// Workers made from this client trace workflows and activities too.
		topts.Interceptors = append(topts.Interceptors, ti)
	}
	tc, err := client.NewLazyClient(topts)
	if err != nil {
		return fmt.Errorf("temporal client: %w", err)
	}
	defer tc.Close()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return vc.Run(gctx) })
	if cfg.PprofAddr != "" {
		// The profiler on its own listener, never on the API's.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		psrv := &http.Server{Addr: cfg.PprofAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		log.Info("profiler listening", "addr", cfg.PprofAddr)
		go func() { _ = psrv.ListenAndServe() }()
		defer psrv.Close()
	}

	acts, err := newActivities(cfg, st, vc, log)
	if err != nil {
		return err
	}
	acts.Workflows = tc
	if mx != nil {
		acts.HTTP.Transport = mx.Transport(acts.HTTP.Transport, cfg.GraphURL, cfg.AuthorityURL)
	}
	if tr.Enabled() {
		acts.HTTP.Transport = tracing.Transport(tr.Provider, acts.HTTP.Transport)
	}
	checks := []api.Check{
		{Name: "postgres", Probe: st.Ping},
		{Name: "vault", Probe: vc.Health},
		{Name: "temporal", Probe: func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
	}
	if *role == roleAll || *role == roleWorker {
		var polling atomic.Bool
		g.Go(func() error {
			// A worker whose workflows would fail to set their search
			// attributes never starts: it names them and `outlookd setup`.
			if err := waitSearchAttributes(gctx, tc, prof.Namespace, log.With("component", "worker")); err != nil {
				return err
			}
			return worker.Run(gctx, tc, worker.Options{TaskQueue: cfg.TaskQueue, Logger: log.With("component", "worker"), CacheSize: cfg.WorkflowCache,
				Register: worker.Register(acts), Started: func() { polling.Store(true) }})
		})
		checks = append(checks, api.Check{Name: "worker", Probe: func(context.Context) error {
			if !polling.Load() {
				return errors.New("the worker does not poll its task queue yet (its log says why: search attributes, Temporal)")
			}
			return nil
		}})
		sweeper := &retention.Sweeper{Store: st, Uploads: st, Log: log.With("component", "retention")}
		g.Go(func() error { return sweeper.Run(gctx) })
	}
	if *role == roleAll || *role == roleAPI {
		changes, lifecycle := cfg.Notifications()
		connector := &connect.Service{Temporal: tc, Tokens: vc.Tokens(), Store: st, Identity: acts.Identity, TaskQueue: cfg.TaskQueue, Namespace: prof.Namespace, Apps: activities.Credentials{A: acts},
			Options: workflows.Options{NotificationURL: changes, LifecycleURL: lifecycle, ReconcileEvery: cfg.ReconcileEvery,
				ExpiryMargins: cfg.SecretExpiryMargins}}
		if cfg.WebhooksAllowInsecure {
			log.Warn("OUTLOOKD_WEBHOOKS_ALLOW_INSECURE is set: webhook endpoints may be http and on loopback or private addresses; local development only")
		}
		dispatcher := &outbox.Dispatcher{Store: st, Secrets: vc.Tokens().GetSigningSecrets,
			HTTP: outbox.NewHTTPClient(15*time.Second, cfg.WebhooksAllowInsecure), AllowInsecure: cfg.WebhooksAllowInsecure,
			Log: log.With("component", "outbox")}
		g.Go(func() error { return dispatcher.Run(gctx) })
		inbox := store.NewInbox(st)
		defer inbox.Close()
		forwarder := &webhook.Forwarder{Store: st, Temporal: tc, Log: log.With("component", "webhook")}
		g.Go(func() error { return forwarder.Run(gctx) })
		receiver := &webhook.Receiver{Store: st, Inbox: inbox, Forwarder: forwarder, Log: log.With("component", "webhook")}
		// Catch-up rounds after the receiver refused notifications.
		g.Go(func() error { return receiver.Run(gctx) })
		router := api.NewRouter(api.Deps{
			Logger:       log.With("component", "api"),
			ReadyTimeout: cfg.ReadyTimeout,
			Store:        st,
			Temporal:     tc,
			Connect:      connector,
			Tokens:       vc.Tokens(),
			Receiver:     receiver,
			Mail:         mailreader.Reader{A: acts},
			Drafts:       activities.Drafts{A: acts},
			RateLimit:    cfg.APIRateLimit,
			RateBurst:    int(2 * cfg.APIRateLimit),
			Tracer:       tracerOrNil(tr),
			// Local development only (OUTLOOKD_WEBHOOKS_ALLOW_INSECURE).
			WebhooksAllowInsecure: cfg.WebhooksAllowInsecure,
			Checks:                checks,
		})
		if err := serveHTTP(gctx, g, cfg.HTTPAddr, router, cfg.ShutdownTimeout, log.With("component", "api")); err != nil {
			return err
		}
	}
	if *role == roleWorker {
		// A worker serves no API, only its probes: /healthz while the
		// process runs, /readyz once its dependencies answer and it polls.
		if err := serveHTTP(gctx, g, cfg.HTTPAddr, api.NewHealthRouter(checks, cfg.ReadyTimeout), cfg.ShutdownTimeout, log.With("component", "health")); err != nil {
			return err
		}
	}
	err = g.Wait()
	log.Info("outlookd stopped")
	return err
}

// serveHTTP listens on addr and serves h in g until ctx ends, then shuts
// the server down within the timeout. Headers must arrive within 10 s; the
// API's router sets each request's read and write deadlines from its route
// (api.ReadBudget...); an idle keep-alive connection is closed after two
// minutes.
func serveHTTP(ctx context.Context, g *errgroup.Group, addr string, h http.Handler, shutdown time.Duration, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http %s: %w", addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), shutdown)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	return nil
}

// newActivities builds the activities with the process's clients.
func newActivities(cfg config.Config, st *store.Store, vc *vault.Client, log *slog.Logger) (*activities.Activities, error) {
	hc, err := httpClient(cfg.CACertFile)
	if err != nil {
		return nil, err
	}
	tokens := vc.Tokens()
	return &activities.Activities{
		Tokens: tokens,
		Store:  st,
		Identity: identity.Config{AuthorityURL: cfg.AuthorityURL.String(), Tenant: cfg.Tenant, ClientID: cfg.ClientID,
			RedirectURL: cfg.Redirect(), AdminRedirectURL: cfg.AdminRedirect()},
		ClientSecret: tokens.AppSecret,
		GraphURL:     cfg.GraphURL.String(),
		HTTP:         hc,
		// Graph's global limit is per app: the app's requests are counted
		// under its client ID, an application connection's with them (one
		// budget for both errs on the side of sending less).
		Limits:        activities.NewMailboxLimits(st, 0, 0, 0).SetApp(cfg.ClientID, 0, 0),
		RefreshMargin: cfg.RefreshMargin,
	}, nil
}

// httpClient is the client for Microsoft's hosts, trusting an extra CA
// when one is configured.
func httpClient(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("OUTLOOKD_CA_CERT_FILE: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OUTLOOKD_CA_CERT_FILE: %s holds no PEM certificate", caFile)
		}
		t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: t, Timeout: 2 * time.Minute}, nil
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(tracing.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(tracing.LogHandler(slog.NewJSONHandler(w, opts)))
}

// tracerOrNil is the provider the API traces requests with, nil when
// tracing is off.
func tracerOrNil(tr *tracing.Tracing) trace.TracerProvider {
	if !tr.Enabled() {
		return nil
	}
	return tr.Provider
}

// registerCounts reports the registry's figures at each scrape:
// connections, mailboxes and sends by state, subscriptions by how soon they
// expire, webhook deliveries waiting or parked, and the notification inbox.
func registerCounts(mx *metrics.Metrics, st *store.Store) {
	rows := func(count func(context.Context) ([]store.Count, error)) metrics.CountFunc {
		return func(ctx context.Context) ([]metrics.Row, error) {
			cs, err := count(ctx)
			out := make([]metrics.Row, len(cs))
			for i, c := range cs {
				out[i] = metrics.Row{Labels: c.Values, N: c.N}
			}
			return out, err
		}
	}
	mx.RegisterCounts(metrics.Counts{
		Connections: rows(st.CountConnections),
		Mailboxes:   rows(st.CountMailboxes),
		Sends:       rows(st.CountSends),
		SendStates: []string{workflows.SendDraft, workflows.SendQueued, workflows.SendSending, workflows.SendSent,
			workflows.SendFailed, workflows.SendCanceled, workflows.SendReauthRequired},
		Subscriptions: rows(st.CountSubscriptions),
		Deliveries:    rows(st.CountDeliveries),
		Inbox:         rows(st.CountInbox),
		InboxAge:      rows(st.InboxAge),
	})
}
