package test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
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
// sandboxes; 500 create/kill cycles leave no veth and no table.
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
		n := 500
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

// TestEgressDomainsDaemon: domain rules through every way in — `soulbox
// sandbox create --allow-domain/--allow-out/--deny-out`, the Go SDK's
// CreateOptions, and PUT /sandboxes/{id}/network at run time; the domain
// filter of an adopted sandbox is restarted by a new daemon; and a
// sandbox with egress that dies while no daemon runs has its veth, chains
// and set swept by the next daemon.
func TestEgressDomainsDaemon(t *testing.T) {
	requireRoot(t)
	h := newInetHost(t)
	dir := dataDir(t)
	d := startDaemon(t, dir, "--dns", inetAddr)
	key := newAPIKey(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	prep := func(c *created) {
		// Its envd access token, from connect (create by CLI or SDK
		// does not hand it to the test).
		if st := d.call(key, "POST", "/sandboxes/"+c.SandboxID+"/connect", map[string]any{"timeout": 300}, c); st/100 != 2 || c.EnvdAccessToken == "" {
			t.Fatalf("connect %s: %d %+v", c.SandboxID, st, c)
		}
		d.upload(*c, netprobeBin, "/home/user/netprobe")
		d.exec(ctx, *c, "", "chmod", "755", "/home/user/netprobe")
	}
	get := func(c created, url string) (string, int32) {
		return d.exec(ctx, c, "", "/home/user/netprobe", "get", url)
	}
	expect := func(what string, c created, url string, ok bool) {
		t.Helper()
		out, code := get(c, url)
		if (code == 0) != ok {
			t.Errorf("%s: %s: exit %d %q, want success %v", what, url, code, out, ok)
		}
	}

	// The CLI's create flags.
	out, errOut, code := cli(t, d, key, "", "sandbox", "create", "--timeout", "300s", "--allow-domain", "allowed.test", "--deny-out", "0.0.0.0/0", "--allow-out", privateAddr)
	if code != 0 {
		t.Fatalf("sandbox create: %d %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	byCLI := created{SandboxID: lines[len(lines)-1]}
	prep(&byCLI)
	expect("cli", byCLI, "http://allowed.test/", true)
	expect("cli", byCLI, "http://"+privateAddr+"/", true)
	expect("cli", byCLI, "http://other.test/", false)
	expect("cli", byCLI, "http://"+otherAddr+"/", false)
	if _, errOut, code := cli(t, d, key, "", "sandbox", "create", "--allow-domain", "bad domain"); code == 0 || !strings.Contains(errOut, "domain") {
		t.Errorf("create with a bad domain: %d %q", code, errOut)
	}

	// The Go SDK's fields.
	c := sdkClient(t, d, key)
	sbx, err := c.Create(ctx, soulbox.CreateOptions{Timeout: 300 * time.Second, AllowOut: []string{"allowed.test"}, DenyOut: []string{"0.0.0.0/0"}})
	if err != nil {
		t.Fatalf("SDK create: %v", err)
	}
	bySDK := created{SandboxID: sbx.ID}
	prep(&bySDK)
	expect("sdk", bySDK, "http://allowed.test/", true)
	expect("sdk", bySDK, "http://"+otherAddr+"/", false)
	open, err := c.Create(ctx, soulbox.CreateOptions{Timeout: 300 * time.Second, Network: true})
	if err != nil {
		t.Fatalf("SDK create: %v", err)
	}
	byNet := created{SandboxID: open.ID}
	prep(&byNet)
	expect("sdk network", byNet, "http://other.test/", true)

	// At run time: domains on, then off again.
	put := func(body any) {
		t.Helper()
		if st := d.call(key, "PUT", "/sandboxes/"+byNet.SandboxID+"/network", body, nil); st != http.StatusNoContent {
			t.Fatalf("PUT network %v: %d", body, st)
		}
	}
	put(map[string]any{"allowOut": []string{"allowed.test"}, "denyOut": []string{"0.0.0.0/0"}})
	expect("put domains", byNet, "http://allowed.test/", true)
	expect("put domains", byNet, "http://other.test/", false)
	expect("put domains", byNet, "http://"+otherAddr+"/", false)
	put(map[string]any{})
	expect("put cleared", byNet, "http://other.test/", true)
	if h.otherQueries.Load() == 0 {
		t.Errorf("control: other.test was never asked upstream once domains were cleared")
	}

	// A new daemon restarts the filter of an adopted sandbox.
	outer := t
	d.stop(9)
	d = startDaemon(outer, dir, "--dns", inetAddr)
	expect("after restart", byCLI, "http://allowed.test/", true)
	expect("after restart", byCLI, "http://"+otherAddr+"/", false)

	for _, c := range []created{byCLI, bySDK, byNet} {
		if st := d.call(key, "DELETE", "/sandboxes/"+c.SandboxID, nil, nil); st != http.StatusNoContent {
			t.Fatalf("kill: %d", st)
		}
	}

	// Died while no daemon ran: swept at the next start.
	dead := d.create(key, map[string]any{"timeout": 300, "network": map[string]any{"allowOut": []string{"allowed.test"}}})
	slot, procs := sandboxCgroup(t, dead.SandboxID)
	if len(netLeft(t, dead.SandboxID, slot)) != 5 {
		t.Fatalf("control: the sandbox's network is not all there: %v", netLeft(t, dead.SandboxID, slot))
	}
	d.stop(9)
	for _, p := range procs {
		syscall.Kill(p, syscall.SIGKILL)
	}
	d = startDaemon(outer, dir, "--dns", inetAddr)
	deadline := time.Now().Add(10 * time.Second)
	for len(netLeft(t, dead.SandboxID, slot)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if l := netLeft(t, dead.SandboxID, slot); len(l) > 0 {
		t.Errorf("left after the restart: %v", l)
	}
}

// sandboxCgroup finds a live sandbox's uid slot and processes from its
// cgroup (named sbx-<instance>-<slot>-<id>).
func sandboxCgroup(t *testing.T, id string) (int, []int) {
	t.Helper()
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/*/sbx-*-" + id)
	dirs2, _ := filepath.Glob("/sys/fs/cgroup/*/sbx-*-" + id)
	for _, dir := range append(dirs, dirs2...) {
		f := strings.Split(filepath.Base(dir), "-")
		slot, err := strconv.Atoi(f[len(f)-2])
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		var procs []int
		for _, s := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(s); err == nil {
				procs = append(procs, p)
			}
		}
		if len(procs) > 0 {
			return slot, procs
		}
	}
	t.Fatalf("no cgroup with processes for sandbox %s", id)
	return 0, nil
}

// netLeft lists what of a sandbox's network exists: its veth, and its
// chains and set in the table inet soulbox.
func netLeft(t *testing.T, id string, slot int) []string {
	t.Helper()
	var out []string
	if _, err := netlink.LinkByName("sbx" + strconv.Itoa(slot)); err == nil {
		out = append(out, "veth sbx"+strconv.Itoa(slot))
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tbl := &nftables.Table{Name: "soulbox", Family: nftables.TableFamilyINet}
	chains, _ := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	for _, ch := range chains {
		if ch.Table.Name == "soulbox" && strings.HasSuffix(ch.Name, "-"+id) {
			out = append(out, "chain "+ch.Name)
		}
	}
	if s, err := c.GetSetByName(tbl, "dom-"+id); err == nil && s != nil {
		out = append(out, "set "+s.Name)
	}
	return out
}
