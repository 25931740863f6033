package tracing

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Transport opens a client span for each request next makes to Microsoft
// (Graph and the identity platform), a child of the span in the request's
// context (an activity's, or an API request's for reads on demand).
//
// It is written here rather than taken from otelhttp because otelhttp
// records the full URL, and Graph URLs carry mailbox addresses in their path
// (/users/{upn}) and contact addresses in $filter. A span here names the
// route with every identifier replaced by {id}, records the status and
// Graph's request-id (what Microsoft's support asks for), and no query.
// Nothing is injected into the outgoing headers: Microsoft's hosts do not
// take part in outlookd's traces.
func Transport(tp trace.TracerProvider, next http.RoundTripper) http.RoundTripper {
	if tp == nil {
		return next
	}
	return &transport{tracer: tp.Tracer("github.com/outlookd/outlookd/tracing"), next: next}
}

type transport struct {
	tracer trace.Tracer
	next   http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	route := Route(req.URL.Path)
	ctx, span := t.tracer.Start(req.Context(), req.Method+" "+route,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
			attribute.String("url.template", route),
		))
	defer span.End()
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if id := resp.Header.Get("request-id"); id != "" && len(id) <= 64 {
		span.SetAttributes(attribute.String("graph.request_id", id))
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" && len(ra) <= 32 {
		span.SetAttributes(attribute.String("http.response.header.retry-after", ra))
	}
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	return resp, nil
}

// words are the path segments of Graph's and the identity platform's
// routes that name a resource or an action rather than identify one.
var words = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`v1.0 beta me users user mailFolders childFolders messages attachments
		delta delta() microsoft.graph.delta() subscriptions sendMail send createReply createReplyAll createForward
		reply replyAll forward move copy $batch $value $count mailboxSettings createUploadSession
		inbox drafts sentitems deleteditems junkemail archive outbox msgfolderroot recoverableitemsdeletions
		organization contacts photo oauth2 v2.0 token authorize adminconsent devicecode common organizations
		consumers discovery keys openid-configuration .well-known oidc userinfo extensions
		singleValueExtendedProperties multiValueExtendedProperties reauthorize`) {
		words[w] = true
	}
}

// Route is path with every segment that is not one of Graph's words
// replaced by {id}: /v1.0/users/ada@contoso.com/mailFolders/AAMk.../messages
// becomes /v1.0/users/{id}/mailFolders/{id}/messages.
func Route(path string) string {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if s == "" || words[s] {
			continue
		}
		// A function call such as mailFolders('inbox') or
		// messages/delta(deltatoken='...') keeps its name only.
		if name, _, ok := strings.Cut(s, "("); ok && words[name] {
			segs[i] = name + "(…)"
			continue
		}
		segs[i] = "{id}"
	}
	return strings.Join(segs, "/")
}
