package activities

import (
	"net/http"

	"golang.org/x/oauth2"

	"github.com/outlookd/outlookd/graph"
)

// graphWithToken is a Graph client for a token not yet stored.
func (a *Activities) graphWithToken(tok *oauth2.Token) (*graph.Client, error) {
	transport := a.httpClient().Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	return graph.NewClient(graph.Config{BaseURL: a.GraphURL, Transport: transport}, oauth2.StaticTokenSource(tok))
}
