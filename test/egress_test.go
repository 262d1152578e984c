package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// runNetprobe runs netprobe in a one-shot sandbox with the given flags.
func runNetprobe(t *testing.T, dir string, flags []string, args ...string) runResult {
	t.Helper()
	flags = append([]string{"--copy-in", "netprobe=" + netprobeBin, "--timeout", "20s"}, flags...)
	return soulboxRun(t, dir, flags, append([]string{"./netprobe"}, args...)...)
}

// TestEgressRun: a one-shot run reaches the test internet host only with
// --network; deny rules block it and allow rules win over deny rules;
// link-local (cloud metadata), private ranges, every address of the host
// (a service on 0.0.0.0, the gateway) stay blocked; nothing is left.
func TestEgressRun(t *testing.T) {
	requireRoot(t)
	newInetHost(t)
	dir := dataDir(t)
	url := "http://" + inetAddr + "/"
	netFlags := []string{"--network", "--dns", inetAddr}

	t.Run("off by default", func(t *testing.T) {
		if res := runNetprobe(t, dir, nil, "get", url); res.ExitCode == 0 {
			t.Fatalf("reached the internet without --network: %q", res.Stdout)
		}
	})
	t.Run("on with --network", func(t *testing.T) {
		res := runNetprobe(t, dir, netFlags, "get", url)
		if res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "200 internet says hi to "+inetHostSide) {
			t.Fatalf("got %+v, want 200 (masqueraded as %s)", res, inetHostSide)
		}
		res = soulboxRun(t, dir, netFlags, "cat", "/etc/resolv.conf")
		if !strings.Contains(res.Stdout, "nameserver "+inetAddr+"\n") {
			t.Errorf("resolv.conf: %q", res.Stdout)
		}
	})
	t.Run("deny and allow", func(t *testing.T) {
		if res := runNetprobe(t, dir, append(netFlags, "--deny-out", "198.51.100.0/24"), "get", url); res.ExitCode == 0 {
			t.Errorf("a deny rule did not block: %q", res.Stdout)
		}
		if res := runNetprobe(t, dir, append(netFlags, "--deny-out", "0.0.0.0/0", "--allow-out", inetAddr), "get", url); res.ExitCode != 0 {
			t.Errorf("an allow rule did not win over deny: %q", res.Stdout)
		}
	})
	t.Run("always blocked", func(t *testing.T) {
		if res := runNetprobe(t, dir, append(netFlags, "--allow-out", "169.254.0.0/16"), "get", "http://"+metadataAddr+"/"); res.ExitCode == 0 {
			t.Errorf("reached the metadata address: %q", res.Stdout)
		}
		if res := runNetprobe(t, dir, netFlags, "get", "http://"+privateAddr+"/"); res.ExitCode == 0 {
			t.Errorf("reached a private address without an allow rule: %q", res.Stdout)
		}
		if res := runNetprobe(t, dir, append(netFlags, "--allow-out", privateAddr), "get", "http://"+privateAddr+"/"); res.ExitCode != 0 {
			t.Errorf("an allowed private address was blocked: %q", res.Stdout)
		}
	})
	t.Run("host services", func(t *testing.T) {
		ln, err := net.Listen("tcp4", "0.0.0.0:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
		targets := []string{"gw:" + port}
		addrs, _ := net.InterfaceAddrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				targets = append(targets, net.JoinHostPort(n.IP.String(), port))
			}
		}
		// Positive control: the listener answers on every host address.
		for _, a := range targets[1:] {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err != nil {
				t.Fatalf("control: %s: %v", a, err)
			}
			c.Close()
		}
		res := runNetprobe(t, dir, append(netFlags, "--allow-out", "0.0.0.0/0"), "dialall", strings.Join(targets, ","))
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		if len(lines) != len(targets) {
			t.Fatalf("got %q for %v", res.Stdout, targets)
		}
		for _, l := range lines {
			if !strings.HasSuffix(l, " error") {
				t.Errorf("a host service was reachable from a sandbox with egress: %s", l)
			}
		}
	})
	hostClean(t, dir)
	networkClean(t)
}

// TestEgressDaemon: sandboxes created with allow_internet_access reach
// the test internet host; their rules change at run time through PUT
// /sandboxes/{id}/network; one sandbox cannot reach another; metrics
// count the traffic; a daemon restart keeps the network of adopted
// sandboxes; 100 create/kill cycles leave no veth and no table.
func TestEgressDaemon(t *testing.T) {
	requireRoot(t)
	newInetHost(t)
	dir := dataDir(t)
	d := startDaemon(t, dir, "--pool", "1", "--dns", inetAddr)
	key := newAPIKey(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	url := "http://" + inetAddr + "/"

	a := d.create(key, map[string]any{"timeout": 300, "allow_internet_access": true})
	b := d.create(key, map[string]any{"timeout": 300, "network": map[string]any{"denyOut": []string{"203.0.113.0/24"}}})
	off := d.create(key, map[string]any{"timeout": 300})
	for _, c := range []created{a, b, off} {
		d.upload(c, netprobeBin, "/home/user/netprobe")
		d.exec(ctx, c, "", "chmod", "755", "/home/user/netprobe")
	}
	get := func(c created) (string, int32) { return d.exec(ctx, c, "", "/home/user/netprobe", "get", url) }

	if out, code := get(a); code != 0 || !strings.HasPrefix(out, "200 ") {
		t.Fatalf("sandbox with egress: %d %q", code, out)
	}
	if out, code := get(b); code != 0 {
		t.Fatalf("sandbox with rules: %d %q", code, out)
	}
	if out, code := get(off); code == 0 {
		t.Fatalf("sandbox without egress reached the internet: %q", out)
	}

	t.Run("sandboxes apart", func(t *testing.T) {
		d.startBackground(ctx, a, "srv", "/home/user/netprobe", "serve", "8000")
		addr, code := d.exec(ctx, a, "", "/home/user/netprobe", "myaddr")
		if code != 0 {
			t.Fatalf("myaddr: %q", addr)
		}
		target := net.JoinHostPort(strings.TrimSpace(addr), "8000")
		time.Sleep(200 * time.Millisecond)
		if out, code := d.exec(ctx, a, "", "/home/user/netprobe", "dial", target); code != 0 {
			t.Fatalf("control: the server does not answer on its own address: %q", out)
		}
		for _, allow := range [][]string{nil, {"10.200.0.0/16", "0.0.0.0/0"}} {
			if st := d.call(key, "PUT", "/sandboxes/"+b.SandboxID+"/network", map[string]any{"allowOut": allow}, nil); st != http.StatusNoContent {
				t.Fatalf("PUT network: %d", st)
			}
			if _, code := d.exec(ctx, b, "", "/home/user/netprobe", "dial", target); code == 0 {
				t.Errorf("sandbox b reached sandbox a at %s (allow %v)", target, allow)
			}
		}
	})

	t.Run("rules change at run time", func(t *testing.T) {
		put := func(body any) int { return d.call(key, "PUT", "/sandboxes/"+a.SandboxID+"/network", body, nil) }
		if st := put(map[string]any{"denyOut": []string{"198.51.100.0/24"}}); st != http.StatusNoContent {
			t.Fatalf("PUT: %d", st)
		}
		if out, code := get(a); code == 0 {
			t.Errorf("deny rule added at run time did not block: %q", out)
		}
		if st := put(map[string]any{"allow_internet_access": false, "allowOut": []string{inetAddr}}); st != http.StatusNoContent {
			t.Fatalf("PUT: %d", st)
		}
		if out, code := get(a); code != 0 {
			t.Errorf("allowOut did not open: %q", out)
		}
		if st := put(map[string]any{}); st != http.StatusNoContent {
			t.Fatalf("PUT: %d", st)
		}
		if out, code := get(a); code != 0 {
			t.Errorf("clearing the rules did not reopen: %q", out)
		}
		if st := d.call(key, "PUT", "/sandboxes/"+off.SandboxID+"/network", map[string]any{}, nil); st != http.StatusConflict {
			t.Errorf("PUT on a sandbox without egress: %d, want 409", st)
		}
		if st := put(map[string]any{"denyOut": []string{"example.com"}}); st != http.StatusBadRequest {
			t.Errorf("PUT with a domain deny: %d, want 400", st)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		var m []map[string]any
		d.call(key, "GET", "/sandboxes/"+a.SandboxID+"/metrics", nil, &m)
		if len(m) != 1 || m[0]["netBytesOut"] == nil || m[0]["netBytesOut"].(float64) <= 0 || m[0]["netPacketsIn"].(float64) <= 0 {
			t.Errorf("metrics of a sandbox with egress: %v", m)
		}
		var m2 []map[string]any
		d.call(key, "GET", "/sandboxes/"+off.SandboxID+"/metrics", nil, &m2)
		if len(m2) != 1 || m2[0]["netBytesOut"] != nil {
			t.Errorf("metrics of a sandbox without egress: %v", m2)
		}
	})

	outer := t
	t.Run("restart keeps the network", func(t *testing.T) {
		d.stop(9)
		d = startDaemon(outer, dir, "--pool", "1", "--dns", inetAddr)
		if out, code := get(a); code != 0 {
			t.Fatalf("after restart: %d %q", code, out)
		}
		if st := d.call(key, "PUT", "/sandboxes/"+a.SandboxID+"/network", map[string]any{"denyOut": []string{inetAddr}}, nil); st != http.StatusNoContent {
			t.Fatalf("PUT after restart: %d", st)
		}
		if out, code := get(a); code == 0 {
			t.Errorf("rule changed after restart did not apply: %q", out)
		}
	})

	for _, c := range []created{a, b, off} {
		if st := d.call(key, "DELETE", "/sandboxes/"+c.SandboxID, nil, nil); st != http.StatusNoContent {
			t.Fatalf("kill: %d", st)
		}
	}
	networkClean(t)

	t.Run("create and kill cycles", func(t *testing.T) {
		n := 100
		if testing.Short() {
			n = 20
		}
		for i := 0; i < n; i++ {
			c := d.create(key, map[string]any{"timeout": 60, "allow_internet_access": true})
			if st := d.call(key, "DELETE", "/sandboxes/"+c.SandboxID, nil, nil); st != http.StatusNoContent {
				t.Fatalf("kill %d: %d", i, st)
			}
		}
		networkClean(t)
	})
}

// TestEgressDomains: with a domain allow-list (and everything else
// denied) a sandbox resolves only the allowed names, through SoulBox's
// DNS filter whatever nameserver it asks; it reaches an allowed name's
// address, over HTTP and TLS, only for that name (Host and SNI are
// checked); the other name neither resolves (its query never leaves the
// host) nor is reachable by address; the filter's ports give no way to
// the host; and nothing is left.
func TestEgressDomains(t *testing.T) {
	requireRoot(t)
	h := newInetHost(t)
	dir := dataDir(t)
	flags := []string{"--network", "--dns", inetAddr, "--allow-domain", "allowed.test", "--allow-domain", "*.wild.test", "--deny-out", "0.0.0.0/0"}
	probe := func(args ...string) runResult {
		res := runNetprobe(t, dir, flags, args...)
		t.Logf("%v: exit %d: %q", args, res.ExitCode, res.Stdout)
		return res
	}

	if res := probe("get", "http://allowed.test/"); res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "200 internet says hi") {
		t.Errorf("allowed domain: %+v", res)
	}
	if res := probe("get", "http://a.wild.test/"); res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "200 internet says hi") {
		t.Errorf("wildcard domain: %+v", res)
	}
	if res := probe("get", "http://wild.test/"); res.ExitCode == 0 {
		t.Errorf("*.wild.test allowed wild.test itself: %q", res.Stdout)
	}
	if res := probe("get", "http://other.test/"); res.ExitCode == 0 || !strings.Contains(res.Stdout, "resolve") && !strings.Contains(res.Stdout, "lookup") {
		t.Errorf("other domain: %+v", res)
	}
	if n := h.otherQueries.Load(); n != 0 {
		t.Errorf("%d queries for a refused name reached the upstream nameserver", n)
	}
	if res := probe("get", "http://"+otherAddr+"/"); res.ExitCode == 0 {
		t.Errorf("reached the other address directly: %q", res.Stdout)
	}
	if res := probe("get", "http://"+inetAddr+"/"); res.ExitCode == 0 {
		t.Errorf("reached the allowed domain's address before resolving it: %q", res.Stdout)
	}
	// The resolved address, for the allowed name and for another one.
	if res := probe("resolveget", "allowed.test", "http://"+inetAddr+"/", "allowed.test"); res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "200 ") {
		t.Errorf("HTTP Host allowed.test: %+v", res)
	}
	if res := probe("resolveget", "allowed.test", "http://"+inetAddr+"/", "other.test"); !strings.HasPrefix(res.Stdout, "403 ") {
		t.Errorf("HTTP Host other.test to allowed.test's address: %+v", res)
	}
	if res := probe("resolveget", "allowed.test", "https://"+inetAddr+"/", "allowed.test"); res.ExitCode != 0 || !strings.HasPrefix(res.Stdout, "200 ") {
		t.Errorf("TLS SNI allowed.test: %+v", res)
	}
	if res := probe("resolveget", "allowed.test", "https://"+inetAddr+"/", "other.test"); res.ExitCode == 0 {
		t.Errorf("TLS SNI other.test to allowed.test's address: %+v", res)
	}
	// The filter's ports and the gateway: nothing but the filter's
	// services, and those refuse direct use.
	if res := probe("dialall", "gw:22,gw:80,gw:443"); strings.Contains(res.Stdout, " ok") {
		t.Errorf("host ports reachable: %q", res.Stdout)
	}
	hostClean(t, dir)
	networkClean(t)
}
