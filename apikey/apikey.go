// Package apikey makes and checks outlookd's API keys. A key reads
// "olk_<id>_<secret>": the ID is public and names the stored row, the
// secret is 32 random bytes of which only a SHA-256 is stored. A fast hash
// is enough (and keeps every request cheap) because the secret is random,
// not a password a person chose.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

const prefix = "olk_"

// New returns a fresh key, its ID and the hash to store.
func New() (key, id string, hash []byte) {
	idb := make([]byte, 6)
	secret := make([]byte, 32)
	_, _ = rand.Read(idb)
	_, _ = rand.Read(secret)
	id = hex.EncodeToString(idb)
	s := base64.RawURLEncoding.EncodeToString(secret)
	return prefix + id + "_" + s, id, Hash(s)
}

// Split parses a key into its ID and secret.
func Split(key string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(key, prefix)
	if !found {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 12 || len(secret) != 43 {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", "", false
	}
	return id, secret, true
}

// Hash is what is stored of a secret.
func Hash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Matches compares a presented secret with a stored hash in constant time.
func Matches(secret string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(secret), hash) == 1
}
