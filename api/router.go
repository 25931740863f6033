// Package api is outlookd's HTTP face: the versioned REST API the app backend
// calls, the webhook receiver Graph posts to, and the health endpoints.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"
	"go.temporal.io/sdk/client"

	"github.com/outlookd/outlookd/connect"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/vault"
	"github.com/outlookd/outlookd/webhook"
	"github.com/outlookd/outlookd/workflows"
)

// Deps is what the handlers need. Without a Store only the health
// endpoints are served.
type Deps struct {
	Logger *slog.Logger
	// Checks are the dependencies /readyz probes.
	Checks []Check
	// ReadyTimeout bounds each check.
	ReadyTimeout time.Duration

	Store    *store.Store
	Temporal client.Client
	Connect  *connect.Service
	Tokens   *vault.TokenStore
	Receiver *webhook.Receiver
	// Mail reads bodies and attachments from Graph on demand.
	Mail MailReader
	// Drafts makes and changes the app's drafts in a mailbox on demand.
	Drafts DraftMaker
	// RateLimit is requests per second per API key (burst RateBurst).
	RateLimit float64
	RateBurst int
	// SendOptions tune the sends' workflows (zero: the defaults).
	SendOptions workflows.SendOptions
	// UploadLifetime is how long an upload lives (zero: UploadLifetime,
	// 24 hours).
	UploadLifetime time.Duration
	// CallbackTimeout bounds the consent callback: the hand-off to the
	// connection's workflow and the exchange with Microsoft (zero: 45 s).
	// A connection not finished by then completes without the user, who
	// is told so (202).
	CallbackTimeout time.Duration
	// Tracer traces each request (nil: not traced).
	Tracer trace.TracerProvider
	// WebhooksAllowInsecure accepts http webhook endpoints and ones on
	// loopback or private addresses: local development only.
	WebhooksAllowInsecure bool
}

// MailReader reads from a connected mailbox on demand.
type MailReader interface {
	Body(ctx context.Context, connectionID, userID, messageID string) (contentType, content string, err error)
	Attachment(ctx context.Context, connectionID, userID, messageID, attachmentID string) (*http.Response, error)
}

// server holds the handlers' dependencies.
type server struct {
	d Deps
}

// NewRouter builds the gin engine with every route.
func NewRouter(d Deps) *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.ContextWithFallback = true
	r.HandleMethodNotAllowed = true
	r.Use(requestID)
	if d.Tracer != nil {
		r.Use(traced(d.Tracer))
	}
	r.Use(recovery(d.Logger), accessLog(d.Logger), deadlines)
	r.NoRoute(func(c *gin.Context) {
		problem(c, http.StatusNotFound, "not_found", "No resource lives at this path.")
	})
	r.NoMethod(func(c *gin.Context) {
		problem(c, http.StatusMethodNotAllowed, "method_not_allowed", "This resource does not accept the "+c.Request.Method+" method.")
	})

	h := health{checks: d.Checks, timeout: d.ReadyTimeout}
	r.GET("/healthz", h.live)
	r.GET("/readyz", h.ready)
	if d.Store == nil {
		return r
	}
	if d.RateLimit == 0 {
		d.RateLimit, d.RateBurst = 50, 100
	}
	s := &server{d: d}
	// Every /v1 route refuses a query it cannot read or does not take.
	v1 := r.Group("/v1", checkQuery)
	v1.GET("/openapi.json", serveOpenAPI)
	v1.GET("/oauth/callback", s.callback)
	v1.GET("/oauth/admin-callback", s.adminCallback)
	if d.Receiver != nil {
		v1.POST("/graph/notifications", gin.WrapF(d.Receiver.Notifications))
		v1.POST("/graph/lifecycle", gin.WrapF(d.Receiver.Lifecycle))
	}
	auth := newAuthenticator(d.Store.LookupAPIKey, d.RateLimit, d.RateBurst)
	a := v1.Group("", auth.middleware)
	a.POST("/connections", s.createConnection)
	a.GET("/connections", s.listConnections)
	a.GET("/connections/:id", s.getConnection)
	a.DELETE("/connections/:id", s.deleteConnection)
	a.POST("/connections/:id/reauthorize", s.reauthorize)
	a.POST("/connections/:id/resync", s.resync)
	a.POST("/connections/:id/repair", s.repair)
	a.PATCH("/connections/:id/settings", s.patchSettings)
	a.PUT("/connections/:id/visibility", s.putVisibility)
	a.GET("/connections/:id/folders", s.listFolders)
	a.GET("/connections/:id/messages", s.listMessages)
	a.GET("/connections/:id/messages/:mid", s.getMessage)
	a.GET("/connections/:id/messages/:mid/attachments/:aid", s.getAttachment)
	a.GET("/connections/:id/contacts", s.listContacts)
	a.POST("/connections/:id/contacts", s.addContacts)
	a.POST("/connections/:id/contacts/remove", s.removeContacts)
	a.PUT("/connections/:id/credential", s.rotateCredential)
	a.GET("/connections/:id/directory", s.listDirectory)
	a.POST("/connections/:id/discover", s.discover)
	a.GET("/connections/:id/mailboxes", s.listMailboxes)
	a.POST("/connections/:id/mailboxes", s.attachMailbox)
	a.GET("/connections/:id/mailboxes/:mbx", s.getMailbox)
	a.DELETE("/connections/:id/mailboxes/:mbx", s.detachMailbox)
	a.POST("/connections/:id/mailboxes/:mbx/resync", s.resyncMailbox)
	a.POST("/connections/:id/mailboxes/:mbx/repair", s.repairMailbox)
	a.GET("/connections/:id/mailboxes/:mbx/folders", s.listFolders)
	a.GET("/connections/:id/mailboxes/:mbx/messages", s.listMessages)
	a.GET("/connections/:id/mailboxes/:mbx/messages/:mid", s.getMessage)
	a.GET("/connections/:id/mailboxes/:mbx/messages/:mid/attachments/:aid", s.getAttachment)
	a.POST("/connections/:id/mailboxes/:mbx/messages/:mid/reply", s.respond("reply"))
	a.POST("/connections/:id/mailboxes/:mbx/messages/:mid/reply-all", s.respond("reply-all"))
	a.POST("/connections/:id/mailboxes/:mbx/messages/:mid/forward", s.respond("forward"))
	a.POST("/connections/:id/mailboxes/:mbx/sends", s.createSend)
	a.GET("/connections/:id/mailboxes/:mbx/sends", s.listSends)
	a.GET("/connections/:id/mailboxes/:mbx/contacts", s.listContacts)
	a.POST("/connections/:id/mailboxes/:mbx/contacts", s.addContacts)
	a.POST("/connections/:id/mailboxes/:mbx/contacts/remove", s.removeContacts)
	a.POST("/tenants/admin-consent", s.createAdminConsent)
	a.GET("/tenants/:tenant", s.getTenant)
	a.POST("/connections/:id/messages/:mid/reply", s.respond("reply"))
	a.POST("/connections/:id/messages/:mid/reply-all", s.respond("reply-all"))
	a.POST("/connections/:id/messages/:mid/forward", s.respond("forward"))
	for _, base := range []string{"/connections/:id", "/connections/:id/mailboxes/:mbx"} {
		a.POST(base+"/drafts", s.createDraft)
		a.GET(base+"/drafts", s.listDrafts)
		a.PUT(base+"/drafts/:sid", s.replaceDraft)
		a.DELETE(base+"/drafts/:sid", s.discardDraft)
		a.POST(base+"/drafts/:sid/send", s.sendDraft)
	}
	a.POST("/connections/:id/sends", s.createSend)
	a.POST("/connections/:id/uploads", s.createUpload)
	a.POST("/connections/:id/mailboxes/:mbx/uploads", s.createUpload)
	a.GET("/connections/:id/uploads/:uid", s.getUpload)
	a.PUT("/connections/:id/uploads/:uid", s.putUploadRange)
	a.DELETE("/connections/:id/uploads/:uid", s.deleteUpload)
	a.GET("/connections/:id/sends", s.listSends)
	a.GET("/connections/:id/sends/:sid", s.getSend)
	a.GET("/events", s.events)
	a.GET("/webhook-endpoints", s.listEndpoints)
	a.POST("/webhook-endpoints", s.createEndpoint)
	a.PUT("/webhook-endpoints", s.putOrgEndpoint)
	a.GET("/webhook-endpoints/:eid", s.getEndpoint)
	a.PATCH("/webhook-endpoints/:eid", s.patchEndpoint)
	a.DELETE("/webhook-endpoints/:eid", s.deleteEndpoint)
	a.POST("/webhook-endpoints/:eid/test", s.testEndpoint)
	a.GET("/webhook-endpoints/:eid/deliveries/:did", s.getDelivery)
	return r
}

// Deadlines of a request, from its arrival. The server itself bounds only
// the headers (cmd/outlookd); the rest depends on the route.
const (
	// ReadBudget is the time a client has to send a request's body.
	ReadBudget = 30 * time.Second
	// WriteBudget is the time an answer may take to be written.
	WriteBudget = time.Minute
	// NotificationReadBudget: Graph gives up on an answer after 3 s
	// (docs/graph.md#delivery-and-retries), so a notification body still
	// arriving after 5 s is not Graph's.
	NotificationReadBudget = 5 * time.Second
	// StreamWriteBudget is the time an attachment download may take.
	StreamWriteBudget = 30 * time.Minute
)

// deadlines sets the connection's read and write deadlines for this
// request from its route, so that a client sending a partial body (or
// reading an answer slowly) holds a connection for a bounded time.
func deadlines(c *gin.Context) {
	read, write := ReadBudget, WriteBudget
	switch p := c.Request.URL.Path; {
	case strings.HasPrefix(p, "/v1/graph/"):
		read = NotificationReadBudget
	case strings.Contains(p, "/attachments/"):
		write = StreamWriteBudget
	}
	now := time.Now()
	rc := http.NewResponseController(c.Writer)
	// Writers that cannot take deadlines (httptest recorders) are served
	// without them.
	_ = rc.SetReadDeadline(now.Add(read))
	_ = rc.SetWriteDeadline(now.Add(write))
	c.Next()
}

// accessLog logs one line per request, with the request's id and trace
// when the logger's handler is tracing.LogHandler. It logs the path only, never the query
// string: OAuth callbacks carry authorization codes there.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelInfo
		if c.Request.URL.Path == "/healthz" || c.Request.URL.Path == "/readyz" {
			level = slog.LevelDebug
		}
		log.Log(c.Request.Context(), level, "http request",
			"method", c.Request.Method,
			"path", c.Request.URL.Path,
			"status", c.Writer.Status(),
			"duration_ms", float64(time.Since(start).Microseconds())/1000,
		)
	}
}

// recovery turns a panic into a generic 500 problem and logs it.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		log.Error("handler panicked", "path", c.Request.URL.Path, "panic", err)
		problem(c, http.StatusInternalServerError, "internal", "Something went wrong on our side; it has been logged.")
		c.Abort()
	})
}
