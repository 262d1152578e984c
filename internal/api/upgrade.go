package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// checkUpgrade checks a WebSocket handshake before the daemon does any
// work for it (opening a terminal, dialling a port), so that a request
// that is not one gets a JSON error like every other, not the plain-text
// answer of websocket.Accept. It checks what Accept checks.
func checkUpgrade(r *http.Request) error {
	if !r.ProtoAtLeast(1, 1) || !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") {
		return fmt.Errorf("%w: this endpoint is a WebSocket: send Connection: Upgrade and Upgrade: websocket (HTTP/1.1)", errUpgradeRequired)
	}
	if v := r.Header.Get("Sec-WebSocket-Version"); v != "13" {
		return fmt.Errorf("%w: Sec-WebSocket-Version %q: only 13 is supported", errBadRequest, v)
	}
	keys := r.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return fmt.Errorf("%w: exactly one Sec-WebSocket-Key header is required", errBadRequest)
	}
	if k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(k) != 16 {
		return fmt.Errorf("%w: Sec-WebSocket-Key must be 16 bytes in base64", errBadRequest)
	}
	return nil
}

// headerHasToken reports whether a comma-separated header has token
// (case-insensitive) in any of its values.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
