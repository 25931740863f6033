package apikey

import (
	"strings"
	"testing"
)

func TestNewSplitMatches(t *testing.T) {
	key, id, hash := New()
	gotID, secret, ok := Split(key)
	if !ok || gotID != id || !Matches(secret, hash) {
		t.Fatalf("round trip of %q: %q %v", key, gotID, ok)
	}
	other, _, _ := New()
	_, otherSecret, _ := Split(other)
	if Matches(otherSecret, hash) {
		t.Error("another key's secret matched")
	}
	if strings.Contains(string(hash), secret) {
		t.Error("the hash holds the secret")
	}
}

func TestSplitRejects(t *testing.T) {
	key, _, _ := New()
	for _, bad := range []string{"", "olk_", "Bearer " + key, key[:len(key)-1], strings.Replace(key, "olk_", "olx_", 1),
		"olk_zzzzzzzzzzzz_" + strings.Repeat("a", 43), key + "x"} {
		if _, _, ok := Split(bad); ok {
			t.Errorf("Split(%q) accepted", bad)
		}
	}
}
