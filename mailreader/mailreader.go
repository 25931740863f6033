// Package mailreader reads from a connected mailbox on demand for the API:
// a message's body, an attachment's bytes. It reaches Graph through the
// activities' token handling and the mailbox's shared request budget, but
// is not an activity.
package mailreader

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	abs "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/activities"
	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
)

// ErrGone: Graph no longer has the message or attachment.
var ErrGone = errors.New("mailreader: not found at Graph")

// ReauthError is an on-demand read refused because the connection's
// refresh token is dead (the identity platform answered invalid_grant or
// the like): only the user signing in again can bring it back. It wraps
// the activities' ReauthRequired error.
type ReauthError struct {
	// Reason is why the identity platform refused (empty: not known).
	Reason identity.Reason
	Err    error
}

func (e *ReauthError) Error() string { return e.Err.Error() }

func (e *ReauthError) Unwrap() error { return e.Err }

// Reader reads from a connection's mailbox on demand for the API (a
// message's body, an attachment's bytes), with the activities' token
// handling and the mailbox's shared request budget.
type Reader struct {
	A *activities.Activities
}

// Body fetches a message's body.
func (r Reader) Body(ctx context.Context, connectionID, userID, messageID string) (contentType, content string, err error) {
	gc, err := activities.GraphFor(ctx, r.A, connectionID, userID)
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
	u := strings.TrimSuffix(r.A.GraphURL, "/") + "/users/" + url.PathEscape(userID) + "/messages/" + url.PathEscape(messageID) +
		"/attachments/" + url.PathEscape(attachmentID) + "/$value"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Prefer", `IdType="ImmutableId"`)
	resp, err := activities.GraphHTTP(ctx, r.A, connectionID, userID).Do(req)
	if err != nil {
		return nil, onDemandError("attachment", err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, ErrGone
	}
	if resp.StatusCode >= 300 {
		resp.Body.Close()
		return nil, fmt.Errorf("mailreader: attachment: Graph answered %d", resp.StatusCode)
	}
	return resp, nil
}

func onDemandError(what string, err error) error {
	if ge, ok := graph.AsError(err); ok && ge.Status == http.StatusNotFound {
		return ErrGone
	}
	err = activities.ClassifyGraph(what, err)
	if reason, ok := activities.ReauthReason(err); ok {
		return &ReauthError{Reason: reason, Err: err}
	}
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
