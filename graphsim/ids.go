package graphsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// newGUID returns a random RFC 4122 version 4 UUID string.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// exchangeID builds an ID shaped like Exchange's: a fixed prefix and
// base64url with '=' padding, '-' and '_' (docs/graph.md#paths-and-ids: the SDK escapes '='
// in paths, so the simulator must decode path segments).
func exchangeID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	// 31 bytes encode to 44 characters with one '=' of padding.
	return prefix + base64.URLEncoding.EncodeToString(sum[:31])
}
