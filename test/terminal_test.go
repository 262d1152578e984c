package test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTerminalWebSocket opens a terminal in a sandbox over the daemon's
// WebSocket endpoint, as a browser would: typing, a resize, the exit code.
func TestTerminalWebSocket(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	other := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	c := d.create(key, map[string]any{"timeout": 120})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wsURL := strings.Replace(d.url, "http://", "ws://", 1) + "/sandboxes/" + c.SandboxID + "/terminal?cols=80&rows=24"

	// Refused: no credentials, another team's key, a wrong token.
	for name, opts := range map[string]*websocket.DialOptions{
		"no credentials": nil,
		"other team":     {HTTPHeader: http.Header{"X-Api-Key": {other}}},
	} {
		_, status, err := wsDial(ctx, wsURL, opts)
		if err == nil || (status != 401 && status != 404) {
			t.Fatalf("%s: dial %v, status %d", name, err, status)
		}
	}
	if _, status, err := wsDial(ctx, wsURL+"&access_token=wrong", nil); err == nil || status != 401 {
		t.Fatalf("wrong token: %v, status %d", err, status)
	}

	for _, auth := range []string{"key", "token"} {
		u, opts := wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key}}}
		if auth == "token" {
			u, opts = wsURL+"&access_token="+c.EnvdAccessToken, nil
		}
		conn, _, err := wsDial(ctx, u, opts)
		if err != nil {
			t.Fatalf("%s: %v", auth, err)
		}
		var screen bytes.Buffer
		var exit struct {
			Type     string `json:"type"`
			ExitCode *int   `json:"exitCode"`
		}
		readUntil := func(want string) {
			t.Helper()
			for !strings.Contains(screen.String(), want) {
				typ, data, err := conn.Read(ctx)
				if err != nil {
					t.Fatalf("%s: terminal closed before %q: %v\n%q", auth, want, err, screen.String())
				}
				if typ == websocket.MessageBinary {
					screen.Write(data)
				} else {
					json.Unmarshal(data, &exit)
				}
			}
		}
		conn.Write(ctx, websocket.MessageBinary, []byte("tty | sed 's/^/TTY=/'; stty size | sed 's/^/SIZE=/'\n"))
		readUntil("TTY=/dev/pts/")
		readUntil("SIZE=24 80")
		conn.Write(ctx, websocket.MessageText, []byte(`{"type":"resize","cols":100,"rows":30}`))
		time.Sleep(100 * time.Millisecond)
		conn.Write(ctx, websocket.MessageBinary, []byte("stty size | sed 's/^/SIZE=/'; exit 5\n"))
		readUntil("SIZE=30 100")
		for exit.Type != "exit" {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				t.Fatalf("%s: no exit message: %v", auth, err)
			}
			if typ == websocket.MessageText {
				json.Unmarshal(data, &exit)
			}
		}
		if exit.ExitCode == nil || *exit.ExitCode != 5 {
			t.Fatalf("%s: exit %+v", auth, exit)
		}
		conn.CloseNow()
	}
}

// wsDial dials a WebSocket and returns the HTTP status of the handshake.
func wsDial(ctx context.Context, u string, opts *websocket.DialOptions) (*websocket.Conn, int, error) {
	conn, resp, err := websocket.Dial(ctx, u, opts) //nolint:bodyclose // closed below on failure; coder/websocket owns a 101's body
	status := 0
	if resp != nil {
		status = resp.StatusCode
		if err != nil && resp.Body != nil {
			resp.Body.Close()
		}
	}
	return conn, status, err
}
