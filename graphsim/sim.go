package graphsim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a simulator.
type Options struct {
	// AccessTokenLifetime returns the lifetime of each access token; the
	// default draws 60-90 minutes as Entra does (docs/graph.md#access-tokens).
	AccessTokenLifetime func() time.Duration
	// RefreshTokenInactivity is how long an unused refresh token lives
	// (docs/graph.md#refresh-tokens: 90 days).
	RefreshTokenInactivity time.Duration
	// AuthCodeLifetime is the life of an authorization code (about 10 min).
	AuthCodeLifetime time.Duration
	// DeltaTokenMaxAge expires delta tokens older than this with 410
	// SyncStateNotFound (docs/graph.md#delta-token-expiry; Outlook's real limit is not fixed).
	DeltaTokenMaxAge time.Duration
	// MailboxConcurrency and MailboxRequests per MailboxWindow are the
	// per app and mailbox limits (docs/graph.md#throttling: 4, and 10,000 per 10 minutes).
	MailboxConcurrency int
	MailboxRequests    int
	MailboxWindow      time.Duration

	// Subscriptions and notifications (docs/graph.md#change-notifications).
	Subscriptions SubscriptionOptions
	// Sending limits (docs/graph.md#sending-limits).
	Sending SendingOptions

	// UsersDeltaPageSize is how many users a /users/delta page holds (200,
	// observed; docs/graph.md#users-delta), and DirectoryDeltaTokenMaxAge
	// how long its tokens live (7 days, documented for directory objects).
	UsersDeltaPageSize        int
	DirectoryDeltaTokenMaxAge time.Duration

	// AppRequests per AppWindow is Graph's global limit per app, across
	// all tenants and mailboxes (docs/graph.md#throttling: 130,000 per
	// 10 seconds). DirectoryResourceUnits per DirectoryWindow is the
	// directory's budget per app and tenant (3,500, 5,000 or 8,000 per 10
	// seconds by the tenant's size when zero).
	AppRequests            int
	AppWindow              time.Duration
	DirectoryResourceUnits int
	DirectoryWindow        time.Duration
}

// SubscriptionOptions shapes change notifications; the defaults are Graph's.
type SubscriptionOptions struct {
	// MaxLifetime of a mail subscription: the documented 10,080 minutes
	// (docs/graph.md#subscription-lifetime; a tenant was seen refusing more
	// than 10,070, older pages say 4,230).
	MaxLifetime time.Duration
	// MinLifetime: shorter requests are raised to it (45 minutes).
	MinLifetime time.Duration
	// PerMailbox caps active subscriptions per mailbox (1,000).
	PerMailbox int
	// ValidationTimeout is the handshake budget (10 s).
	ValidationTimeout time.Duration
	// DeliveryTimeout is the notification HTTP timeout (3 s).
	DeliveryTimeout time.Duration
	// SlowAfter marks an answer as slow (2.9 s).
	SlowAfter time.Duration
	// SlowSample, SlowThrottleShare and SlowDropShare: after SlowSample
	// notifications in a SlowWindow, an endpoint with that share of slow
	// answers is throttled (10 %) or dropped (15 %).
	SlowSample        int
	SlowThrottleShare float64
	SlowDropShare     float64
	SlowWindow        time.Duration
	// ThrottleDelay delays deliveries to a throttled endpoint (10 min).
	ThrottleDelay time.Duration
	// RetryDelay is the first retry delay, doubling up to ThrottleDelay.
	RetryDelay time.Duration
	// Retention is how long undelivered notifications are retried (4 h).
	Retention time.Duration
	// BatchWindow gathers notifications for one URL into one POST.
	BatchWindow time.Duration
	// BatchMax caps the notifications in one POST.
	BatchMax int
	// ReauthWarning: reauthorizationRequired is sent this long before a
	// subscription expires.
	ReauthWarning time.Duration
	// InsecureHTTPNotificationURLs accepts http:// notification and
	// lifecycle URLs. Microsoft Graph refuses them (400 InvalidRequest,
	// docs/graph.md#creating-a-subscription), so a subscription that works
	// with this on fails at Microsoft. It exists for local receivers that
	// cannot serve TLS (tests, make run); never turn it on otherwise.
	InsecureHTTPNotificationURLs bool
	// Writes (POST, PATCH, DELETE) and Requests (of any kind) per Window
	// are the subscription API's limits per app and tenant: 1,000 and
	// 5,000 per 20 seconds (docs/graph.md#creating-a-subscription).
	Writes, Requests int
	Window           time.Duration
}

func (o *SubscriptionOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.MaxLifetime, 10080*time.Minute)
	def(&o.MinLifetime, 45*time.Minute)
	def(&o.ValidationTimeout, 10*time.Second)
	def(&o.DeliveryTimeout, 3*time.Second)
	def(&o.SlowAfter, 2900*time.Millisecond)
	def(&o.SlowWindow, 10*time.Minute)
	def(&o.ThrottleDelay, 10*time.Minute)
	def(&o.RetryDelay, 10*time.Second)
	def(&o.Retention, 4*time.Hour)
	def(&o.BatchWindow, 50*time.Millisecond)
	def(&o.ReauthWarning, time.Hour)
	if o.PerMailbox == 0 {
		o.PerMailbox = 1000
	}
	if o.SlowSample == 0 {
		o.SlowSample = 100
	}
	if o.SlowThrottleShare == 0 {
		o.SlowThrottleShare = 0.10
	}
	if o.SlowDropShare == 0 {
		o.SlowDropShare = 0.15
	}
	if o.BatchMax == 0 {
		o.BatchMax = 100
	}
	if o.Writes == 0 {
		o.Writes = 1000
	}
	if o.Requests == 0 {
		o.Requests = 5000
	}
	def(&o.Window, 20*time.Second)
}

func (o *Options) defaults() {
	if o.AccessTokenLifetime == nil {
		o.AccessTokenLifetime = func() time.Duration {
			var b [1]byte
			_, _ = rand.Read(b[:])
			return 60*time.Minute + time.Duration(int(b[0])%31)*time.Minute
		}
	}
	if o.RefreshTokenInactivity == 0 {
		o.RefreshTokenInactivity = 90 * 24 * time.Hour
	}
	if o.AuthCodeLifetime == 0 {
		o.AuthCodeLifetime = 10 * time.Minute
	}
	if o.DeltaTokenMaxAge == 0 {
		o.DeltaTokenMaxAge = 30 * 24 * time.Hour
	}
	if o.MailboxConcurrency == 0 {
		o.MailboxConcurrency = 4
	}
	if o.MailboxRequests == 0 {
		o.MailboxRequests = 10000
	}
	if o.MailboxWindow == 0 {
		o.MailboxWindow = 10 * time.Minute
	}
	o.Subscriptions.defaults()
	o.Sending.defaults()
	if o.UsersDeltaPageSize == 0 {
		o.UsersDeltaPageSize = 200
	}
	if o.DirectoryDeltaTokenMaxAge == 0 {
		o.DirectoryDeltaTokenMaxAge = 7 * 24 * time.Hour
	}
	if o.AppRequests == 0 {
		o.AppRequests = 130000
	}
	if o.AppWindow == 0 {
		o.AppWindow = 10 * time.Second
	}
	if o.DirectoryWindow == 0 {
		o.DirectoryWindow = 10 * time.Second
	}
}

// Sim is a simulated identity platform and Graph endpoint.
type Sim struct {
	opts  Options
	clock *Clock
	key   *rsa.PrivateKey
	kid   string
	cert  []byte // the signing key's certificate (DER), published as x5c

	mu           sync.RWMutex
	tenants      map[string]*Tenant // by ID
	tenantByName map[string]*Tenant // by lower-case domain
	apps         map[string]*App
	users        map[string]*User // by ID
	groups       map[string]*Group
	userByName   map[string]*User // by lower-case UPN and mail
	codes        map[string]*authCode
	refresh      map[string]*refreshGrant
	// opaque maps the access tokens of personal accounts, which are not
	// JWTs (docs/graph.md#personal-accounts), to the claims graphsim signed.
	opaque     map[string]string
	subs       map[string]*Subscription
	issued     []string              // every secret value the simulator issued or received
	sent       map[string][]SentMail // by sender user ID
	delivered  map[string][]Delivery // copies received, by recipient user ID
	sendFaults *sendFaults
	uploads    map[string]*uploadSession // attachment upload sessions by ID
	baseURL    atomic.Pointer[string]

	throttle *throttler
	delivery *delivery
	faults   *faults
	stats    *counters
	srv      *httptest.Server
	caPool   *x509.CertPool // the CA of StartTLSOn
	handler  http.Handler
}

// New creates an empty simulator. Add tenants, apps and users through the
// control methods, then Start it (or mount Handler in a server of your own
// and call SetBaseURL).
func New(opts Options) (*Sim, error) {
	opts.defaults()
	sk, err := newSigningKey(time.Now())
	if err != nil {
		return nil, err
	}
	s := &Sim{
		opts:         opts,
		clock:        NewClock(),
		key:          sk.key,
		kid:          sk.kid,
		cert:         sk.cert,
		tenants:      map[string]*Tenant{},
		tenantByName: map[string]*Tenant{},
		apps:         map[string]*App{},
		users:        map[string]*User{},
		groups:       map[string]*Group{},
		userByName:   map[string]*User{},
		codes:        map[string]*authCode{},
		refresh:      map[string]*refreshGrant{},
		opaque:       map[string]string{},
		subs:         map[string]*Subscription{},
		sent:         map[string][]SentMail{},
		delivered:    map[string][]Delivery{},
		sendFaults:   newSendFaults(),
		uploads:      map[string]*uploadSession{},
		faults:       newFaults(),
		stats:        newCounters(),
	}
	s.throttle = newThrottler(opts.MailboxConcurrency, opts.MailboxRequests, opts.MailboxWindow, s.clock)
	s.addTenantLocked(&Tenant{ID: ConsumerTenantID, Domain: "outlook.com", Name: "Microsoft Accounts", Personal: true, UserConsent: true})
	s.handler = s.routes()
	s.delivery = newDelivery(s)
	return s, nil
}

// Clock returns the simulator's clock.
func (s *Sim) Clock() *Clock { return s.clock }

// Handler serves the identity platform, Graph and the control API.
func (s *Sim) Handler() http.Handler { return s.handler }

// SetBaseURL tells the simulator its externally reachable URL (scheme and
// host), used in discovery documents and in nextLink/deltaLink URLs.
func (s *Sim) SetBaseURL(u string) {
	u = strings.TrimSuffix(u, "/")
	s.baseURL.Store(&u)
}

// Start serves on a loopback port over plain HTTP (msgraph-sdk-go and
// x/oauth2 accept http for loopback hosts, docs/graph.md#pointing-the-sdk-at-another-host).
func (s *Sim) Start() error {
	return s.StartOn("127.0.0.1:0")
}

// StartOn serves on addr.
func (s *Sim) StartOn(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("graphsim: listen: %w", err)
	}
	s.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}}
	s.srv.Start()
	s.SetBaseURL(s.srv.URL)
	return nil
}

// Close stops the server.
func (s *Sim) Close() {
	s.delivery.stop()
	if s.srv != nil {
		s.srv.Close()
	}
}

// URL is the simulator's base URL (scheme and host).
func (s *Sim) URL() string {
	if u := s.baseURL.Load(); u != nil {
		return *u
	}
	return ""
}

// AuthorityURL is what replaces https://login.microsoftonline.com.
func (s *Sim) AuthorityURL() string { return s.URL() }

// GraphURL is what replaces https://graph.microsoft.com/v1.0.
func (s *Sim) GraphURL() string { return s.URL() + "/v1.0" }

// HTTPClient returns a client for the simulator's server (its TLS
// configuration when TLS is on).
func (s *Sim) HTTPClient() *http.Client {
	if s.caPool != nil {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.caPool, MinVersion: tls.VersionTLS12}}}
	}
	return http.DefaultClient
}

func (s *Sim) addTenantLocked(t *Tenant) {
	if t.adminGrants == nil {
		t.adminGrants = map[string]map[string]bool{}
	}
	if t.appRoleGrants == nil {
		t.appRoleGrants = map[string]map[string]bool{}
	}
	s.tenants[t.ID] = t
	s.tenantByName[strings.ToLower(t.Domain)] = t
}

// tenantFor resolves the {tenant} path segment: a GUID or a domain.
func (s *Sim) tenantFor(seg string) *Tenant {
	if t := s.tenants[seg]; t != nil {
		return t
	}
	return s.tenantByName[strings.ToLower(seg)]
}

// remember records a secret value the simulator issued (or received, like
// a PKCE verifier), for tests that prove none leaks. Caller holds s.mu.
func (s *Sim) remember(v string) {
	if v != "" {
		s.issued = append(s.issued, v)
	}
}

// Secrets returns every token, code, verifier, client secret and
// clientState the simulator has issued or seen.
func (s *Sim) Secrets() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]string(nil), s.issued...)
}
