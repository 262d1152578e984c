// Package filesig signs and verifies the pre-signed file URLs of a sandbox
// (GET and POST /files with "signature" and "signature_expiration" query
// parameters), in the scheme the E2B SDKs use: "v1_" followed by the
// unpadded standard base64 of SHA-256("path:operation:user:token") or, with
// an expiry, SHA-256("path:operation:user:token:expiry").
//
// The signing key is the sandbox's access token, so whoever holds a signed
// URL can do exactly one operation on one path, as one user, until expiry.
package filesig

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"time"
)

// Operations a signature can allow.
const (
	Read  = "read"  // GET /files
	Write = "write" // POST /files
)

// Errors returned by Verify.
var (
	ErrInvalid = errors.New("invalid file URL signature")
	ErrExpired = errors.New("file URL signature has expired")
)

// Sign returns the signature of one operation on path as user (empty for
// the sandbox's default user). A zero expires means the signature never
// expires.
func Sign(path, operation, user, token string, expires time.Time) string {
	raw := path + ":" + operation + ":" + user + ":" + token
	if !expires.IsZero() {
		raw += ":" + strconv.FormatInt(expires.Unix(), 10)
	}
	sum := sha256.Sum256([]byte(raw))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// Verify checks signature against the other parameters. expiration is the
// "signature_expiration" query parameter as sent (empty when none); now is
// the time to check expiry against.
func Verify(signature, expiration, path, operation, user, token string, now time.Time) error {
	var expires time.Time
	if expiration != "" {
		sec, err := strconv.ParseInt(expiration, 10, 64)
		if err != nil || sec <= 0 || strconv.FormatInt(sec, 10) != expiration {
			return ErrInvalid
		}
		expires = time.Unix(sec, 0)
	}
	want := Sign(path, operation, user, token, expires)
	if subtle.ConstantTimeCompare([]byte(signature), []byte(want)) != 1 {
		return ErrInvalid
	}
	if !expires.IsZero() && !now.Before(expires) {
		return ErrExpired
	}
	return nil
}
