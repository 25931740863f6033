// Package temporalconn configures outlookd's Temporal client the way
// Temporal's own SDKs and CLI are configured (the TEMPORAL_* environment
// variables over a profile of the TOML file they share, through
// go.temporal.io/sdk/contrib/envconfig), validates the result at start, and
// registers and checks the custom search attributes a namespace needs.
package temporalconn

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"
)

// Defaults when neither a variable nor the profile names an address or a
// namespace (the same as Temporal's CLI).
const (
	DefaultAddress   = "127.0.0.1:7233"
	DefaultNamespace = "default"
)

// Profile is the resolved Temporal client configuration: where it came from
// and what it says. It never prints the API key or key material.
type Profile struct {
	// File is the profile file read ("" when none exists).
	File string
	// Name is the profile used within the file.
	Name string
	// Address is the frontend host:port.
	Address string
	// Namespace is the namespace the workflows live in.
	Namespace string
	// TLS says whether the connection uses TLS; MTLS whether it presents a
	// client certificate; APIKey whether it sends an API key.
	TLS, MTLS, APIKey bool
	// SkipVerify says the frontend's certificate is not verified
	// (TEMPORAL_TLS_DISABLE_HOST_VERIFICATION): for tests only.
	SkipVerify bool

	profile envconfig.ClientConfigProfile
}

// Error is a Temporal configuration problem, naming the variable (and the
// profile setting) at fault.
type Error struct {
	Var    string // the environment variable, or the profile setting
	Expect string // what was expected, in words
	Err    error  // the underlying error, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("temporal config: %s: expected %s (%v)", e.Var, e.Expect, e.Err)
	}
	return fmt.Sprintf("temporal config: %s: expected %s", e.Var, e.Expect)
}

func (e *Error) Unwrap() error { return e.Err }

// Load resolves the Temporal client configuration from environ (KEY=VALUE
// pairs; nil means the process environment). Precedence, highest first:
// TEMPORAL_* variables, the profile (TEMPORAL_PROFILE, else "default") of the
// file TEMPORAL_CONFIG_FILE (else Temporal's default path,
// $XDG_CONFIG_HOME/temporalio/temporal.toml), then DefaultAddress and
// DefaultNamespace. Everything the connection needs is checked here: files
// exist and parse, a certificate comes with its key, an API key travels over
// TLS.
func Load(environ []string) (Profile, error) {
	var lookup envconfig.EnvLookup = envconfig.EnvLookupOS
	if environ != nil {
		lookup = envList(environ)
	}
	file, explicit := lookup.LookupEnv("TEMPORAL_CONFIG_FILE")
	explicit = explicit && file != ""
	if !explicit {
		file = envconfig.DefaultConfigFilePath()
	}
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				return Profile{}, &Error{Var: "TEMPORAL_CONFIG_FILE", Expect: fmt.Sprintf("a readable Temporal profile file, got %q", file), Err: err}
			}
			file = ""
		}
	}
	name, _ := lookup.LookupEnv("TEMPORAL_PROFILE")
	if name == "" {
		name = envconfig.DefaultConfigFileProfile
	}
	prof, err := envconfig.LoadClientConfigProfile(envconfig.LoadClientConfigProfileOptions{
		ConfigFilePath:   file,
		ConfigFileStrict: true,
		EnvLookup:        lookup,
	})
	if err != nil {
		return Profile{}, &Error{Var: "TEMPORAL_CONFIG_FILE / TEMPORAL_PROFILE", Expect: fmt.Sprintf("profile %q readable from %q", name, file), Err: err}
	}
	if prof.Address == "" {
		prof.Address = DefaultAddress
	}
	if prof.Namespace == "" {
		prof.Namespace = DefaultNamespace
	}
	if err := validate(&prof); err != nil {
		return Profile{}, err
	}
	p := Profile{File: file, Name: name, Address: prof.Address, Namespace: prof.Namespace, APIKey: prof.APIKey != "", profile: prof}
	opts, err := p.options()
	if err != nil {
		return Profile{}, err
	}
	p.TLS = opts.ConnectionOptions.TLS != nil
	p.MTLS = p.TLS && len(opts.ConnectionOptions.TLS.Certificates) > 0
	p.SkipVerify = p.TLS && opts.ConnectionOptions.TLS.InsecureSkipVerify
	return p, nil
}

// ClientOptions returns the options to dial Temporal with, logging through
// log.
func (p Profile) ClientOptions(log *slog.Logger) (client.Options, error) {
	opts, err := p.options()
	if err != nil {
		return client.Options{}, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts.Logger = tlog.NewStructuredLogger(log)
	return opts, nil
}

func (p Profile) options() (client.Options, error) {
	opts, err := p.profile.ToClientOptions(envconfig.ToClientOptionsRequest{})
	if err != nil {
		return client.Options{}, &Error{Var: "TEMPORAL_TLS_*", Expect: "a usable TLS configuration", Err: err}
	}
	return opts, nil
}

// LogValue describes the connection without its secrets.
func (p Profile) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("address", p.Address),
		slog.String("namespace", p.Namespace),
		slog.Bool("tls", p.TLS),
		slog.Bool("mtls", p.MTLS),
		slog.Bool("api_key", p.APIKey),
		slog.Bool("skip_verify", p.SkipVerify),
		slog.String("profile_file", p.File),
		slog.String("profile", p.Name),
	)
}

// validate checks the profile before the SDK sees it, naming the variable
// (or the profile's TOML setting) at fault.
func validate(p *envconfig.ClientConfigProfile) error {
	if host, port, err := net.SplitHostPort(p.Address); err != nil || host == "" || port == "" {
		return &Error{Var: "TEMPORAL_ADDRESS (address)", Expect: fmt.Sprintf("host:port, got %q", p.Address)}
	}
	if strings.TrimSpace(p.Namespace) == "" || strings.ContainsAny(p.Namespace, " \t\n") {
		return &Error{Var: "TEMPORAL_NAMESPACE (namespace)", Expect: fmt.Sprintf("a namespace name without spaces, got %q", p.Namespace)}
	}
	if p.Codec != nil && p.Codec.Endpoint != "" {
		return &Error{Var: "TEMPORAL_CODEC_ENDPOINT (codec.endpoint)", Expect: "unset: outlookd's payloads hold no secret and its worker must not call a remote codec on every replay"}
	}
	t := p.TLS
	if t == nil {
		return nil
	}
	if t.Disabled {
		if p.APIKey != "" {
			return &Error{Var: "TEMPORAL_TLS (tls.disabled)", Expect: "TLS on when TEMPORAL_API_KEY is set: the key would travel in clear"}
		}
		return nil
	}
	certSet := t.ClientCertPath != "" || len(t.ClientCertData) > 0
	keySet := t.ClientKeyPath != "" || len(t.ClientKeyData) > 0
	switch {
	case t.ClientCertPath != "" && len(t.ClientCertData) > 0:
		return &Error{Var: "TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_CERT_DATA", Expect: "one of the two, not both"}
	case t.ClientKeyPath != "" && len(t.ClientKeyData) > 0:
		return &Error{Var: "TEMPORAL_TLS_CLIENT_KEY_PATH / TEMPORAL_TLS_CLIENT_KEY_DATA", Expect: "one of the two, not both"}
	case t.ServerCACertPath != "" && len(t.ServerCACertData) > 0:
		return &Error{Var: "TEMPORAL_TLS_SERVER_CA_CERT_PATH / TEMPORAL_TLS_SERVER_CA_CERT_DATA", Expect: "one of the two, not both"}
	case certSet && !keySet:
		return &Error{Var: "TEMPORAL_TLS_CLIENT_KEY_PATH (tls.client_key_path)", Expect: "the client certificate's private key: a client certificate is set without its key"}
	case keySet && !certSet:
		return &Error{Var: "TEMPORAL_TLS_CLIENT_CERT_PATH (tls.client_cert_path)", Expect: "the client certificate: a private key is set without its certificate"}
	}
	certPEM, err := readPEM("TEMPORAL_TLS_CLIENT_CERT_PATH (tls.client_cert_path)", t.ClientCertPath, t.ClientCertData)
	if err != nil {
		return err
	}
	keyPEM, err := readPEM("TEMPORAL_TLS_CLIENT_KEY_PATH (tls.client_key_path)", t.ClientKeyPath, t.ClientKeyData)
	if err != nil {
		return err
	}
	if certSet {
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			return &Error{Var: "TEMPORAL_TLS_CLIENT_CERT_PATH / TEMPORAL_TLS_CLIENT_KEY_PATH", Expect: "a PEM certificate and its matching private key", Err: err}
		}
	}
	caPEM, err := readPEM("TEMPORAL_TLS_SERVER_CA_CERT_PATH (tls.server_ca_cert_path)", t.ServerCACertPath, t.ServerCACertData)
	if err != nil {
		return err
	}
	if caPEM != nil && !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
		return &Error{Var: "TEMPORAL_TLS_SERVER_CA_CERT_PATH (tls.server_ca_cert_path)", Expect: "PEM CA certificates: none found"}
	}
	return nil
}

// readPEM returns the PEM bytes given inline or read from path (nil when
// neither is set), checking that they hold at least one PEM block.
func readPEM(name, path string, data []byte) ([]byte, error) {
	if path == "" && len(data) == 0 {
		return nil, nil
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{Var: name, Expect: fmt.Sprintf("a readable file, got %q", path), Err: err}
		}
		data = b
	}
	if block, _ := pem.Decode(data); block == nil {
		return nil, &Error{Var: name, Expect: "PEM data (-----BEGIN ...-----)"}
	}
	return data, nil
}

// envList looks variables up in a KEY=VALUE list.
type envList []string

func (e envList) Environ() []string { return e }

func (e envList) LookupEnv(key string) (string, bool) {
	// The last assignment wins, as with os/exec.
	for i := len(e) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(e[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}
