package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
)

// simulate runs graphsim standalone until ctx ends.
func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", stderr)
	addr := fs.String("addr", "127.0.0.1:8800", "address to listen on")
	useTLS := fs.Bool("tls", false, "serve HTTPS with a certificate from a CA generated for this run")
	caFile := fs.String("ca-file", "graphsim-ca.pem", "with --tls: where to write the CA certificate clients must trust")
	host := fs.String("host", "127.0.0.1", "host name in URLs and in the TLS certificate")
	seed := fs.String("seed", "", `"demo" creates a demo tenant with users, a shared mailbox and mail`)
	redirect := fs.String("redirect-uri", "http://127.0.0.1:8080/v1/oauth/callback", "with --seed demo: the demo app's redirect URI (comma-separated for several)")
	perUser := fs.Int("messages", 300, "with --seed demo: messages per mailbox")
	autoConsent := fs.Bool("auto-consent", false, "with --seed demo: let a login_hint skip the consent page")
	atLife := fs.Duration("access-token-lifetime", 0, "lifetime of access tokens (default: 60-90 min, as Entra)")
	deltaAge := fs.Duration("delta-token-max-age", 0, "age at which delta tokens answer 410 SyncStateNotFound (default 720h)")
	infoFile := fs.String("info-file", "", "also write the demo details as JSON to this file")
	insecureHTTP := fs.Bool("insecure-http-notifications", false, "accept http:// notification URLs, which Microsoft Graph refuses (only for local receivers without TLS)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *seed != "" && *seed != "demo" {
		fmt.Fprintf(stderr, "outlookd sim: --seed must be demo, not %q\n", *seed)
		return usageError{fmt.Errorf("bad seed %q", *seed)}
	}
	opts := graphsim.Options{DeltaTokenMaxAge: *deltaAge}
	opts.Subscriptions.InsecureHTTPNotificationURLs = *insecureHTTP
	if *atLife > 0 {
		life := *atLife
		opts.AccessTokenLifetime = func() time.Duration { return life }
	}
	sim, err := graphsim.New(opts)
	if err != nil {
		return err
	}
	if *useTLS {
		ca, err := sim.StartTLSOn(*addr, []string{*host, "localhost", "127.0.0.1"})
		if err != nil {
			return err
		}
		if err := os.WriteFile(*caFile, ca, 0o644); err != nil {
			return fmt.Errorf("write CA: %w", err)
		}
	} else {
		if err := sim.StartOn(*addr); err != nil {
			return err
		}
		if *host != "127.0.0.1" {
			_, port, _ := net.SplitHostPort(strings.TrimPrefix(sim.URL(), "http://"))
			sim.SetBaseURL("http://" + net.JoinHostPort(*host, port))
		}
	}
	defer sim.Close()

	if *insecureHTTP {
		fmt.Fprintln(stderr, "graphsim: WARNING: --insecure-http-notifications: subscriptions accept http:// notification URLs, which Microsoft Graph refuses; what works here with http will not work at Microsoft")
	}
	fmt.Fprintf(stdout, "graphsim listening at %s\n", sim.URL())
	fmt.Fprintf(stdout, "  authority (instead of https://login.microsoftonline.com): %s\n", sim.AuthorityURL())
	fmt.Fprintf(stdout, "  Graph (instead of https://graph.microsoft.com/v1.0):     %s\n", sim.GraphURL())
	fmt.Fprintf(stdout, "  control API:                                              %s/_sim/\n", sim.URL())
	if *useTLS {
		fmt.Fprintf(stdout, "  CA certificate to trust:                                  %s\n", *caFile)
	}
	if *seed == "demo" {
		start := time.Now()
		d, err := sim.SeedDemo(graphsim.DemoOptions{RedirectURIs: strings.Split(*redirect, ","), MessagesPerUser: *perUser, AutoConsent: *autoConsent})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\ndemo tenant %s (%s), seeded in %s\n", d.TenantDomain, d.TenantID, time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(stdout, "  client ID:     %s\n", d.ClientID)
		fmt.Fprintf(stdout, "  client secret: %s   (simulated; never a real secret)\n", d.ClientSecret)
		fmt.Fprintf(stdout, "  redirect URI:  %s\n", *redirect)
		fmt.Fprintf(stdout, "  users:         %s (admin: %s)\n", strings.Join(d.Users, ", "), d.Admin)
		fmt.Fprintf(stdout, "  shared mailbox %s (readable by %s), personal account %s\n", d.Shared, d.Users[0], d.Personal)
		fmt.Fprintf(stdout, "\n  sign in:  %s/common/oauth2/v2.0/authorize?client_id=%s&response_type=code&redirect_uri=%s&scope=offline_access%%20Mail.Read&state=demo\n",
			sim.URL(), d.ClientID, url.QueryEscape(strings.Split(*redirect, ",")[0]))
		if *infoFile != "" {
			b, _ := json.MarshalIndent(struct {
				*graphsim.Demo
				URL string `json:"url"`
			}{d, sim.URL()}, "", "  ")
			if err := os.WriteFile(*infoFile, b, 0o600); err != nil {
				return err
			}
		}
	}
	<-ctx.Done()
	return nil
}
