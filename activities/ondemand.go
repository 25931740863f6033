package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
)

// ErrGone: Graph no longer has the message or attachment.
var ErrGone = errors.New("activities: not found at Graph")

// Reader reads from a connection's mailbox on demand for the API (a
// message's body, an attachment's bytes), with the activities' token
// handling and the mailbox's shared request budget. It is not an activity.
type Reader struct {
	A *Activities
}

// Body fetches a message's body.
func (r Reader) Body(ctx context.Context, connectionID, userID, messageID string) (contentType, content string, err error) {
	gc, err := r.A.graphFor(ctx, connectionID, userID)
	if err != nil {
		return "", "", err
	}
	h := abs.NewRequestHeaders()
	h.Add("Prefer", `IdType="ImmutableId"`)
	msg, err := gc.Users().ByUserId(userID).Messages().ByMessageId(messageID).Get(ctx, &users.ItemMessagesMessageItemRequestBuilderGetRequestConfiguration{
		Headers:         h,
		QueryParameters: &users.ItemMessagesMessageItemRequestBuilderGetQueryParameters{Select: []string{"body"}},
	})
	if err != nil {
		return "", "", onDemandError("message body", err)
	}
	b := msg.GetBody()
	if b == nil {
		return "", "", nil
	}
	if ct := b.GetContentType(); ct != nil {
		contentType = strings.ToLower(ct.String())
	}
	return contentType, deref(b.GetContent()), nil
}

// Attachment opens an attachment's raw bytes at Graph; the caller streams
// and closes the body.
func (r Reader) Attachment(ctx context.Context, connectionID, userID, messageID, attachmentID string) (*http.Response, error) {
	ts := &vaultTokenSource{ctx: ctx, a: r.A, connectionID: connectionID}
	transport := &oauth2.Transport{Source: ts, Base: r.A.graphTransport(ts, userID)}
	u := strings.TrimSuffix(r.A.GraphURL, "/") + "/users/" + url.PathEscape(userID) + "/messages/" + url.PathEscape(messageID) +
		"/attachments/" + url.PathEscape(attachmentID) + "/$value"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Prefer", `IdType="ImmutableId"`)
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		return nil, onDemandError("attachment", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, ErrGone
	}
	if resp.StatusCode >= 300 {
		resp.Body.Close()
		return nil, fmt.Errorf("activities: attachment: Graph answered %d", resp.StatusCode)
	}
	return resp, nil
}

func onDemandError(what string, err error) error {
	if ge, ok := graph.AsError(err); ok && ge.Status == http.StatusNotFound {
		return ErrGone
	}
	return classifyGraph(what, err)
}
