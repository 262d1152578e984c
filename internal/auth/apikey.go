// Package auth generates, recognises and hashes SoulBox credentials. It
// holds no state: keys are persisted (hashed) by internal/store.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Key shapes. SoulBox issues "sb_" keys by default; "e2b_" keys exist so
// that E2B SDK versions that validate the key's shape accept a SoulBox key.
const (
	PrefixSoulBox = "sb_"
	PrefixE2B     = "e2b_"
	secretBytes   = 20 // 160 bits of randomness, 40 hex digits
)

// ErrMalformed is returned for a string that cannot be a SoulBox key.
var ErrMalformed = errors.New("malformed API key")

// NewAPIKey returns a fresh random key with the given prefix.
func NewAPIKey(prefix string) (string, error) {
	if prefix != PrefixSoulBox && prefix != PrefixE2B {
		return "", fmt.Errorf("unknown API key prefix %q", prefix)
	}
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate API key: %w", err)
	}
	return prefix + hex.EncodeToString(b[:]), nil
}

// CheckAPIKey reports whether key has the shape of a key SoulBox issues:
// a known prefix followed by exactly 40 lowercase hex digits.
func CheckAPIKey(key string) error {
	var rest string
	switch {
	case strings.HasPrefix(key, PrefixSoulBox):
		rest = key[len(PrefixSoulBox):]
	case strings.HasPrefix(key, PrefixE2B):
		rest = key[len(PrefixE2B):]
	default:
		return ErrMalformed
	}
	if len(rest) != 2*secretBytes {
		return ErrMalformed
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ErrMalformed
		}
	}
	return nil
}

// HashAPIKey is what is stored and looked up: SHA-256 of the whole key.
// Keys carry 160 random bits, so a fast hash suffices; no salt is needed
// for a value that is not guessable.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Hint is the part of a key safe to show in listings: its prefix and first
// six secret digits.
func Hint(key string) string {
	i := strings.IndexByte(key, '_') + 1
	if i <= 0 || len(key) < i+6 {
		return "?"
	}
	return key[:i+6] + "…"
}
