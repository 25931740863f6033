// Package graphsim simulates the Microsoft identity platform (Entra ID) and
// the Microsoft Graph mail API closely enough that outlookd, msgraph-sdk-go
// and golang.org/x/oauth2 cannot tell it from the real service: the same
// paths, JSON shapes, status codes, error bodies, token rotation, delta
// tokens and throttling (see docs/graph.md at the repository root; comments
// cite its sections as docs/graph.md#section).
//
// A Sim runs in-process for tests (New, then Start; URLs; Close) or
// standalone as `outlookd sim`. Tests and demos drive it through its control
// API under /_sim/ (no real Graph path starts with an underscore), either over
// HTTP with Client or directly through the Sim's methods, and read the ground
// truth of each mailbox to prove nothing was lost or duplicated.
//
// Everything lives in memory behind one lock; the simulated clock can be
// moved forward to age tokens and delta state without waiting.
package graphsim
