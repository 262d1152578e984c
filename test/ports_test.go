package test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// upload writes a host file into a sandbox through the daemon's /files.
func (d *daemon) upload(c created, hostPath, path string) {
	d.t.Helper()
	b, err := os.ReadFile(hostPath)
	if err != nil {
		d.t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", d.url+"/files?path="+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("E2b-Sandbox-Id", c.SandboxID)
	req.Header.Set("X-Access-Token", c.EnvdAccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("upload %s: %s", path, resp.Status)
	}
}

// startNetprobe copies netprobe into the sandbox and serves HTTP and
// WebSocket on port inside it (loopback only: no egress is needed).
func (d *daemon) startNetprobe(ctx context.Context, c created, port string) {
	d.t.Helper()
	d.upload(c, netprobeBin, "/home/user/netprobe")
	if out, code := d.exec(ctx, c, "", "chmod", "755", "/home/user/netprobe"); code != 0 {
		d.t.Fatalf("chmod: %s", out)
	}
	d.startBackground(ctx, c, "netprobe-"+port, "/home/user/netprobe", "serve", port)
	for i := 0; ; i++ {
		if out, code := d.exec(ctx, c, "", "/home/user/netprobe", "dial", "127.0.0.1:"+port); code == 0 {
			return
		} else if i == 50 {
			d.t.Fatalf("netprobe does not listen: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// portGet makes a request to a sandbox's port through the daemon, routed
// by host name (<port>-<id>.<domain>) or by the E2B headers.
func (d *daemon) portGet(id, port string, byHost bool, hdr map[string]string) (int, string) {
	d.t.Helper()
	req, _ := http.NewRequest("GET", d.url+"/some/path", nil)
	if byHost {
		req.Host = port + "-" + id + ".sandbox.test"
	} else {
		req.Header.Set("E2b-Sandbox-Id", id)
		req.Header.Set("E2b-Sandbox-Port", port)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestExposedPorts: HTTP and WebSocket servers inside a sandbox without
// egress are reachable through the daemon, by host name and by headers;
// a port where nothing listens answers 502; a sandbox created with
// private ports needs its own traffic token, and another sandbox's token
// is refused; tokens are not forwarded into the sandbox.
func TestExposedPorts(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	d := startDaemon(t, dir, "--domain", "sandbox.test")
	key := newAPIKey(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	pub := d.create(key, map[string]any{"timeout": 120})
	d.startNetprobe(ctx, pub, "8000")
	// The sandbox has no egress: it cannot reach the daemon's host port.
	if out, code := d.exec(ctx, pub, "", "/home/user/netprobe", "dial", strings.TrimPrefix(d.url, "http://")); code == 0 {
		t.Errorf("a sandbox without egress reached the daemon's address: %s", out)
	}

	t.Run("http by host and by headers", func(t *testing.T) {
		for _, byHost := range []bool{true, false} {
			st, body := d.portGet(pub.SandboxID, "8000", byHost, map[string]string{"X-Access-Token": pub.EnvdAccessToken})
			if st != http.StatusOK || !strings.HasPrefix(body, "hello from netprobe") || !strings.Contains(body, "path=/some/path") {
				t.Fatalf("byHost=%v: got %d %q, want 200 hello", byHost, st, body)
			}
			if !strings.Contains(body, `token=""`) {
				t.Errorf("the access token reached the sandbox: %q", body)
			}
			if byHost && !strings.Contains(body, "host=8000-"+pub.SandboxID+".sandbox.test") {
				t.Errorf("the server did not see the public host name: %q", body)
			}
		}
	})

	t.Run("websocket echo", func(t *testing.T) {
		c, resp, err := websocket.Dial(ctx, strings.Replace(d.url, "http://", "ws://", 1)+"/ws", &websocket.DialOptions{
			HTTPHeader: http.Header{"E2b-Sandbox-Id": {pub.SandboxID}, "E2b-Sandbox-Port": {"8000"}},
		})
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		for _, msg := range []string{"one", "two", strings.Repeat("x", 100000)} {
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "echo: "+msg {
				t.Fatalf("got %.40q, want echo of %.20q", got, msg)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
	})

	t.Run("nothing listening", func(t *testing.T) {
		st, body := d.portGet(pub.SandboxID, "8001", true, nil)
		if st != http.StatusBadGateway || !strings.Contains(body, "nothing listens on port 8001") {
			t.Fatalf("got %d %q, want 502 nothing listens", st, body)
		}
		st, _ = d.portGet("000000000000", "8000", true, nil)
		if st != http.StatusBadGateway {
			t.Fatalf("unknown sandbox: got %d, want 502", st)
		}
	})

	t.Run("private ports need the traffic token", func(t *testing.T) {
		var priv struct {
			created
			TrafficAccessToken *string `json:"trafficAccessToken"`
		}
		if st := d.call(key, "POST", "/sandboxes", map[string]any{"timeout": 120, "network": map[string]any{"allowPublicTraffic": false}}, &priv); st != http.StatusCreated {
			t.Fatalf("create: %d", st)
		}
		if priv.TrafficAccessToken == nil || *priv.TrafficAccessToken == "" {
			t.Fatal("no trafficAccessToken for a sandbox with private ports")
		}
		d.startNetprobe(ctx, priv.created, "8000")
		for _, tc := range []struct {
			name string
			hdr  map[string]string
			want int
		}{
			{"none", nil, http.StatusForbidden},
			{"envd token", map[string]string{"X-Access-Token": priv.EnvdAccessToken}, http.StatusForbidden},
			{"other sandbox's envd token", map[string]string{"E2b-Traffic-Access-Token": pub.EnvdAccessToken}, http.StatusForbidden},
			{"own traffic token", map[string]string{"E2b-Traffic-Access-Token": *priv.TrafficAccessToken}, http.StatusOK},
		} {
			st, body := d.portGet(priv.SandboxID, "8000", true, tc.hdr)
			if st != tc.want {
				t.Errorf("%s: got %d %q, want %d", tc.name, st, body, tc.want)
			}
			if st == http.StatusOK && !strings.Contains(body, `token=""`) {
				t.Errorf("the traffic token reached the sandbox: %q", body)
			}
		}
		// A public sandbox's port does not open another sandbox's.
		if st, body := d.portGet(pub.SandboxID, "8000", true, nil); st != http.StatusOK {
			t.Errorf("public sandbox: got %d %q", st, body)
		}
		// The ports of one sandbox are not another's: pub's server is not
		// on priv's loopback, and vice versa.
		if out, code := d.exec(ctx, priv.created, "", "/home/user/netprobe", "dial", "127.0.0.1:8001"); code == 0 {
			t.Errorf("port 8001 open in a sandbox that has no server on it: %s", out)
		}
	})

	t.Run("paused sandbox", func(t *testing.T) {
		if st := d.call(key, "POST", "/sandboxes/"+pub.SandboxID+"/pause", nil, nil); st != http.StatusNoContent {
			t.Fatalf("pause: %d", st)
		}
		if st, body := d.portGet(pub.SandboxID, "8000", true, nil); st != http.StatusBadGateway {
			t.Errorf("paused: got %d %q, want 502", st, body)
		}
		if st := d.call(key, "DELETE", "/sandboxes/"+pub.SandboxID, nil, nil); st != http.StatusNoContent {
			t.Fatalf("kill: %d", st)
		}
	})
}

// TestTCPTunnel: a raw TCP echo server inside a sandbox without egress
// is reached through GET /sandboxes/{id}/ports/{port}/tcp, a WebSocket
// carrying the bytes (binary frames), with the API key, the sandbox's
// access token, or its traffic token for a sandbox with private ports;
// without credentials, with another sandbox's token, a wrong traffic
// token or a wrong key it is refused; nothing listening gives 502 before the
// upgrade.
func TestTCPTunnel(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	d := startDaemon(t, dir)
	key := newAPIKey(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	sb := d.create(key, map[string]any{"timeout": 120, "secure": true, "network": map[string]any{"allowPublicTraffic": false}})
	other := d.create(key, map[string]any{"timeout": 120, "secure": true})
	d.upload(sb, netprobeBin, "/home/user/netprobe")
	if out, code := d.exec(ctx, sb, "", "chmod", "755", "/home/user/netprobe"); code != 0 {
		t.Fatalf("chmod: %s", out)
	}
	d.startBackground(ctx, sb, "echo", "/home/user/netprobe", "echo", "7000")
	for i := 0; ; i++ {
		if out, code := d.exec(ctx, sb, "", "/home/user/netprobe", "dial", "127.0.0.1:7000"); code == 0 {
			break
		} else if i == 50 {
			t.Fatalf("the echo server does not listen: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ct struct {
		TrafficAccessToken string `json:"trafficAccessToken"`
	}
	if st := d.call(key, "GET", "/sandboxes/"+sb.SandboxID, nil, &ct); st != http.StatusOK || ct.TrafficAccessToken == "" {
		t.Fatalf("sandbox detail: %d, traffic token %q", st, ct.TrafficAccessToken)
	}
	base := strings.Replace(d.url, "http://", "ws://", 1) + "/sandboxes/" + sb.SandboxID + "/ports/"
	dial := func(port, query string, hdr http.Header) (*websocket.Conn, int, error) {
		c, resp, err := websocket.Dial(ctx, base+port+"/tcp"+query, &websocket.DialOptions{HTTPHeader: hdr})
		st := 0
		if resp != nil {
			st = resp.StatusCode
			if resp.Body != nil {
				resp.Body.Close()
			}
		}
		return c, st, err
	}
	for name, how := range map[string]struct {
		query string
		hdr   http.Header
	}{
		"api key":       {"", http.Header{"X-API-Key": {key}}},
		"access token":  {"?access_token=" + sb.EnvdAccessToken, nil},
		"traffic token": {"", http.Header{"E2b-Traffic-Access-Token": {ct.TrafficAccessToken}}},
	} {
		t.Run(name, func(t *testing.T) {
			c, st, err := dial("7000", how.query, how.hdr)
			if err != nil {
				t.Fatalf("dial: %d %v", st, err)
			}
			defer c.CloseNow()
			nc := websocket.NetConn(ctx, c, websocket.MessageBinary)
			for _, msg := range []string{"hello\n", strings.Repeat("y", 200000)} {
				go nc.Write([]byte(msg))
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(nc, got); err != nil {
					t.Fatal(err)
				}
				if string(got) != msg {
					t.Fatalf("echo: got %.20q, want %.20q", got, msg)
				}
			}
			nc.Close()
		})
	}
	for name, how := range map[string]struct {
		port, query string
		hdr         http.Header
		want        int
	}{
		"no credentials":        {"7000", "", nil, http.StatusUnauthorized},
		"other sandbox's token": {"7000", "?access_token=" + other.EnvdAccessToken, nil, http.StatusUnauthorized},
		"wrong traffic token":   {"7000", "?traffic_access_token=nope", nil, http.StatusUnauthorized},
		"nothing listens":       {"7001", "", http.Header{"X-API-Key": {key}}, http.StatusBadGateway},
		"bad port":              {"70000", "", http.Header{"X-API-Key": {key}}, http.StatusBadRequest},
		"wrong key":             {"7000", "", http.Header{"X-API-Key": {"sk_nope"}}, http.StatusUnauthorized},
	} {
		if c, st, err := dial(how.port, how.query, how.hdr); err == nil || st != how.want {
			if c != nil {
				c.CloseNow()
			}
			t.Errorf("%s: got %d (%v), want %d", name, st, err, how.want)
		}
	}
}
