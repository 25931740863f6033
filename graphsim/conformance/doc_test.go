// Package conformance_test drives graphsim with the clients outlookd uses in
// production, msgraph-sdk-go (through outlookd's graph package) and
// golang.org/x/oauth2, and asserts on what those clients see. It lives in
// its own package so that only this test binary pays msgraph-sdk-go's
// compile and link cost.
package conformance_test
