package testenv

import (
	"net/url"
	"testing"
)

// withDatabase returns dsn pointing at another database.
func withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("DATABASE_URL is not a URL")
	}
	u.Path = "/" + name
	return u.String()
}
