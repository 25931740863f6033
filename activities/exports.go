package activities

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
	"go.temporal.io/sdk/temporal"
	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/identity"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// This file is what the activities lend to code that is not an activity
// but must reach Graph as they do: the API's on-demand reader (package
// mailreader) and the backfill benchmark's baseline (connect's tests).

// GraphFor returns a Graph client acting for a connection, with the
// activities' token handling (Vault, refresh, one retry on a refused
// token), whose requests draw on the budget of the mailbox mailboxKey.
// (A function, not a method: every exported method of Activities is
// registered as an activity.)
func GraphFor(ctx context.Context, a *Activities, connectionID, mailboxKey string) (*graph.Client, error) {
	return a.graphFor(ctx, connectionID, mailboxKey)
}

// GraphHTTP returns an HTTP client for raw Graph requests (those the SDK
// does not model, such as an attachment's $value) acting for a connection,
// with the same token handling and mailbox budget as GraphFor.
func GraphHTTP(ctx context.Context, a *Activities, connectionID, mailboxKey string) *http.Client {
	ts := &vaultTokenSource{ctx: ctx, a: a, connectionID: connectionID}
	return &http.Client{Transport: &oauth2.Transport{Source: ts, Base: a.graphTransport(ts, mailboxKey)}}
}

// ForgetToken drops the access token this process keeps for a connection
// (tokenCache), so that its next activity reads Vault: for a change made
// to Vault behind the processes' back (a test, an operator's repair).
func ForgetToken(a *Activities, connectionID string) { a.tokenCache().Remove(connectionID) }

// ClassifyGraph reads a Graph error as the activities do (throttling after
// Retry-After, a refused token, a refusal retrying will not mend).
func ClassifyGraph(op string, err error) error { return classifyGraph(op, err) }

// ReauthReason says whether err carries the activities' ReauthRequired
// error (the connection's refresh token is dead), and why the identity
// platform refused (empty: not known).
func ReauthReason(err error) (identity.Reason, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || appErr.Type() != workflows.ErrReauthRequired {
		return "", false
	}
	var d reasonDetail // reauthRequired's details
	if appErr.HasDetails() && appErr.Details(&d) == nil {
		return identity.Reason(d.Reason), true
	}
	return "", true
}

// BackfillRequest is the request of a folder's first delta page as
// BackfillFolder sends it: filtered to the window, the stored properties
// (the body when bodies), attachment metadata expanded, and the Prefer
// headers.
func BackfillRequest(window time.Time, pageSize int, bodies bool) *users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration {
	filter := "receivedDateTime ge " + window.UTC().Format(time.RFC3339)
	return &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{
		Headers:         preferHeaders(pageSize),
		QueryParameters: &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetQueryParameters{Filter: &filter, Select: selectFor(bodies), Expand: []string{attachmentExpand}},
	}
}

// NextPageRequest is the request of every later page of a delta round,
// whose link carries the query: the Prefer headers alone.
func NextPageRequest(pageSize int) *users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration {
	return &users.ItemMailFoldersItemMessagesDeltaRequestBuilderGetRequestConfiguration{Headers: preferHeaders(pageSize)}
}

// ConvertMessages maps a page's Graph messages to store rows and collects
// the IDs it reports removed, as the sync activities do.
func ConvertMessages(items []models.Messageable, folderID string) ([]store.Message, []string) {
	return convert(items, folderID)
}
