package test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/soulbox-dev/soulbox/internal/store"
)

// cgroupCPU reads the CPU time (ns) of a sandbox's cgroup from the host.
func cgroupCPU(t *testing.T, id string) int64 {
	t.Helper()
	for _, pattern := range []string{"/sys/fs/cgroup/cpuacct/soulbox/sbx-*-" + id + "/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/soulbox/sbx-*-" + id + "/cpuacct.usage"} {
		if m, _ := filepath.Glob(pattern); len(m) == 1 {
			b, err := os.ReadFile(m[0])
			if err != nil {
				t.Fatal(err)
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/soulbox/sbx-*-" + id + "/cpu.stat"); len(m) == 1 {
		b, _ := os.ReadFile(m[0])
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n * 1000
			}
		}
	}
	t.Fatalf("no cgroup for sandbox %s", id)
	return 0
}

func TestDaemonLifecycle(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	other := newAPIKey(t, dir) // another team
	d := startDaemon(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	sb := d.create(key, map[string]any{"timeout": 120, "metadata": map[string]string{"app": "demo"}, "envVars": map[string]string{"GREETING": "hi"}, "limits": map[string]any{"cpus": 0.5, "memoryMB": 256}})
	if sb.EnvdVersion == "" || sb.EnvdAccessToken == "" || strings.ContainsAny(sb.SandboxID, "-.") {
		t.Fatalf("create answer %+v", sb)
	}
	// 201 means it serves commands at once.
	if out, code := d.exec(ctx, sb, "", "sh", "-c", "echo $GREETING; id -un"); out != "hi\nuser\n" || code != 0 {
		t.Fatalf("first command: %q %d", out, code)
	}
	var info struct {
		State    string            `json:"state"`
		Metadata map[string]string `json:"metadata"`
		Limits   struct {
			CPUs     float64 `json:"cpus"`
			MemoryMB int64   `json:"memoryMB"`
		} `json:"limits"`
	}
	if st := d.call(key, "GET", "/sandboxes/"+sb.SandboxID, nil, &info); st != 200 || info.State != "running" || info.Metadata["app"] != "demo" || info.Limits.CPUs != 0.5 || info.Limits.MemoryMB != 256 {
		t.Fatalf("get: %d %+v", st, info)
	}
	var list []map[string]any
	if d.call(key, "GET", "/v2/sandboxes?metadata=app%3Ddemo", nil, &list); len(list) != 1 {
		t.Fatalf("list by metadata: %v", list)
	}
	if d.call(key, "GET", "/v2/sandboxes?metadata=app%3Dother", nil, &list); len(list) != 0 {
		t.Fatalf("list by other metadata: %v", list)
	}
	// Another team sees nothing of it.
	var e apiErr
	if st := d.call(other, "GET", "/sandboxes/"+sb.SandboxID, nil, &e); st != 404 || e.Code != 404 {
		t.Fatalf("other team get: %d %+v", st, e)
	}
	if st := d.call(other, "DELETE", "/sandboxes/"+sb.SandboxID, nil, nil); st != 404 {
		t.Fatalf("other team kill: %d", st)
	}
	if d.call(other, "GET", "/v2/sandboxes", nil, &list); len(list) != 0 {
		t.Fatalf("other team lists %v", list)
	}

	// Pause stops a busy process; resume continues it.
	d.startBackground(ctx, sb, "spin", "sh", "-c", "while :; do :; done")
	time.Sleep(300 * time.Millisecond)
	if st := d.call(key, "POST", "/sandboxes/"+sb.SandboxID+"/pause", nil, nil); st != 204 {
		t.Fatalf("pause: %d", st)
	}
	if st := d.call(key, "POST", "/sandboxes/"+sb.SandboxID+"/pause", nil, &e); st != 409 || e.Code != 409 {
		t.Fatalf("second pause: %d %+v", st, e)
	}
	// Frozen is reported once each task has entered the freezer, which is
	// just before it schedules out (do_freezer_trap: cgroup_enter_frozen,
	// then schedule), so the last microseconds of its slice may be counted
	// after pause returned: wait until the counter stands still for 100ms,
	// then it must not move for a second.
	c0 := cgroupCPU(t, sb.SandboxID)
	for settle := time.Now().Add(2 * time.Second); ; {
		time.Sleep(100 * time.Millisecond)
		c := cgroupCPU(t, sb.SandboxID)
		if c == c0 {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("paused sandbox still using CPU 2s after pause (%v in the last 100ms)", time.Duration(c-c0))
		}
		c0 = c
	}
	time.Sleep(time.Second)
	if c1 := cgroupCPU(t, sb.SandboxID); c1 != c0 {
		t.Fatalf("paused sandbox used %v of CPU", time.Duration(c1-c0))
	}
	if d.call(key, "GET", "/sandboxes/"+sb.SandboxID, nil, &info); info.State != "paused" {
		t.Fatalf("state while paused: %s", info.State)
	}
	if st := d.call(key, "POST", "/sandboxes/"+sb.SandboxID+"/connect", map[string]int{"timeout": 120}, nil); st != 201 {
		t.Fatalf("connect to paused: %d, want 201 (resumed)", st)
	}
	// It runs again: its CPU time grows (by 100ms within 10s, however
	// loaded the host is).
	for waited := time.Duration(0); ; waited += 100 * time.Millisecond {
		c2 := cgroupCPU(t, sb.SandboxID)
		if c2-c0 >= int64(100*time.Millisecond) {
			break
		}
		if waited > 10*time.Second {
			t.Fatalf("resumed sandbox used only %v of CPU in 10s", time.Duration(c2-c0))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := d.call(key, "POST", "/sandboxes/"+sb.SandboxID+"/connect", map[string]int{"timeout": 120}, nil); st != 200 {
		t.Fatalf("connect to running: %d, want 200", st)
	}
	var metrics []struct {
		CPUUsedPct float64 `json:"cpuUsedPct"`
		MemUsed    int64   `json:"memUsed"`
		MemTotal   int64   `json:"memTotal"`
	}
	if st := d.call(key, "GET", "/sandboxes/"+sb.SandboxID+"/metrics", nil, &metrics); st != 200 || len(metrics) != 1 || metrics[0].MemUsed <= 0 || metrics[0].MemTotal != 256<<20 || metrics[0].CPUUsedPct <= 0 {
		t.Fatalf("metrics: %d %+v", st, metrics)
	}

	// Timeout expiry kills.
	short := d.create(key, map[string]any{"timeout": 1})
	deadline := time.Now().Add(10 * time.Second)
	for d.call(key, "GET", "/sandboxes/"+short.SandboxID, nil, nil) != 404 {
		if time.Now().After(deadline) {
			t.Fatal("sandbox with a 1s timeout still there after 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := d.call(key, "DELETE", "/sandboxes/"+sb.SandboxID, nil, nil); st != 204 {
		t.Fatalf("kill: %d", st)
	}
	if st := d.call(key, "DELETE", "/sandboxes/"+sb.SandboxID, nil, nil); st != 404 {
		t.Fatalf("second kill: %d", st)
	}
	d.stop(syscall.SIGTERM) // also ends the warm pool's sandboxes
	hostClean(t, dir)
	if ents, _ := os.ReadDir(filepath.Join(dir, "sandboxes")); len(ents) != 0 {
		t.Fatalf("sandbox directories left: %v", ents)
	}
}

func TestDaemonBadInput(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	sb := d.create(key, map[string]any{"timeout": 120})
	cases := []struct {
		name, key, method, path string
		body                    any
		want                    int
	}{
		{"no key", "", "GET", "/v2/sandboxes", nil, 401},
		{"wrong key", "sb_" + strings.Repeat("0", 40), "GET", "/v2/sandboxes", nil, 401},
		{"malformed key", "nonsense", "POST", "/sandboxes", "{}", 401},
		{"unknown sandbox", key, "GET", "/sandboxes/doesnotexist", nil, 404},
		{"traversal id", key, "GET", "/sandboxes/..%2F..%2Fetc", nil, 404},
		{"unknown endpoint", key, "GET", "/nope", nil, 404},
		{"malformed JSON", key, "POST", "/sandboxes", "{bad", 400},
		{"JSON of wrong type", key, "POST", "/sandboxes", `{"timeout":"long"}`, 400},
		{"trailing data", key, "POST", "/sandboxes", `{} {}`, 400},
		{"oversized body", key, "POST", "/sandboxes", `{"metadata":{"k":"` + strings.Repeat("x", 2<<20) + `"}}`, 413},
		{"zero timeout", key, "POST", "/sandboxes", `{"timeout":0}`, 400},
		{"negative timeout", key, "POST", "/sandboxes", `{"timeout":-5}`, 400},
		{"huge timeout", key, "POST", "/sandboxes", `{"timeout":99999999}`, 400},
		{"zero memory", key, "POST", "/sandboxes", `{"limits":{"memoryMB":0}}`, 400},
		{"negative cpus", key, "POST", "/sandboxes", `{"limits":{"cpus":-1}}`, 400},
		{"too many cpus", key, "POST", "/sandboxes", `{"limits":{"cpus":1000}}`, 400},
		{"huge memory", key, "POST", "/sandboxes", `{"limits":{"memoryMB":100000000}}`, 400},
		{"zero pids", key, "POST", "/sandboxes", `{"limits":{"pids":0}}`, 400},
		{"unknown template", key, "POST", "/sandboxes", `{"templateID":"nope"}`, 404},
		{"bad env name", key, "POST", "/sandboxes", `{"envVars":{"A=B":"x"}}`, 400},
		{"volume mounts", key, "POST", "/sandboxes", `{"volumeMounts":[{"name":"v","path":"/data"}]}`, 400},
		{"timeout body missing", key, "POST", "/sandboxes/" + sb.SandboxID + "/timeout", nil, 400},
		{"bad timeout", key, "POST", "/sandboxes/" + sb.SandboxID + "/timeout", `{"timeout":0}`, 400},
		{"resume running", key, "POST", "/sandboxes/" + sb.SandboxID + "/resume", `{}`, 409},
		{"bad list limit", key, "GET", "/v2/sandboxes?limit=0", nil, 400},
		{"bad list state", key, "GET", "/v2/sandboxes?state=dead", nil, 400},
		{"bad list token", key, "GET", "/v2/sandboxes?nextToken=zzz", nil, 400},
		{"bad metadata filter", key, "GET", "/v2/sandboxes?metadata=%25zz", nil, 400},
	}
	for _, c := range cases {
		var e apiErr
		st := d.call(c.key, c.method, c.path, c.body, &e)
		if st != c.want || e.Code != c.want || e.Message == "" {
			t.Errorf("%s: status %d body %+v, want %d with a JSON message", c.name, st, e, c.want)
		}
	}
	// Data plane: wrong or missing token, unknown sandbox, bad port.
	for _, c := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"no token", map[string]string{"E2b-Sandbox-Id": sb.SandboxID}, 401},
		{"wrong token", map[string]string{"E2b-Sandbox-Id": sb.SandboxID, "X-Access-Token": "x"}, 401},
		// As E2B's proxy answers: the SDKs read 502 as "the sandbox is gone".
		{"unknown sandbox", map[string]string{"E2b-Sandbox-Id": "nope", "X-Access-Token": "x"}, 502},
		{"bad port", map[string]string{"E2b-Sandbox-Id": sb.SandboxID, "E2b-Sandbox-Port": "99999", "X-Access-Token": sb.EnvdAccessToken}, 400},
		{"bad signature", map[string]string{"E2b-Sandbox-Id": sb.SandboxID}, 401},
	} {
		path := "/process.Process/List"
		if c.name == "bad signature" {
			path = "/files?path=/etc/passwd&signature=v1_forged"
		}
		req, _ := http.NewRequest("POST", d.url+path, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("data plane %s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	// Nothing was created or lost, and the daemon still serves.
	var list []map[string]any
	if st := d.call(key, "GET", "/v2/sandboxes", nil, &list); st != 200 || len(list) != 1 {
		t.Fatalf("after bad input: %d, %d sandboxes, want the one", st, len(list))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, _ := d.exec(ctx, sb, "", "echo", "alive"); out != "alive\n" {
		t.Fatalf("sandbox after bad input: %q", out)
	}
}

// TestDaemonRestart kills the daemon (SIGKILL, then SIGTERM) and checks
// that sandboxes survive with their processes, files, ids and tokens, that
// a record whose sandbox died is dropped and that a sandbox without a
// record is destroyed.
func TestDaemonRestart(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	keep := d.create(key, map[string]any{"timeout": 300})
	dies := d.create(key, map[string]any{"timeout": 300})
	orphan := d.create(key, map[string]any{"timeout": 300})
	paused := d.create(key, map[string]any{"timeout": 300})
	d.startBackground(ctx, keep, "sleeper", "sleep", "1000")
	if _, code := d.exec(ctx, keep, "", "sh", "-c", "echo before > ~/note"); code != 0 {
		t.Fatal("write note")
	}
	if st := d.call(key, "POST", "/sandboxes/"+paused.SandboxID+"/pause", nil, nil); st != 204 {
		t.Fatalf("pause: %d", st)
	}

	for round, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		d.stop(sig)
		if round == 0 {
			// While no daemon runs: one sandbox dies, one loses its record.
			killSandboxInit(t, dies.SandboxID)
			st, err := store.Open(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.DeleteSandbox(ctx, orphan.SandboxID); err != nil {
				t.Fatal(err)
			}
			st.Close()
		}
		d = startDaemon(t, dir)
		var info struct {
			State string `json:"state"`
		}
		if st := d.call(key, "GET", "/sandboxes/"+keep.SandboxID, nil, &info); st != 200 || info.State != "running" {
			t.Fatalf("round %d: kept sandbox: %d %+v", round, st, info)
		}
		if st := d.call(key, "GET", "/sandboxes/"+paused.SandboxID, nil, &info); st != 200 || info.State != "paused" {
			t.Fatalf("round %d: paused sandbox: %d %+v", round, st, info)
		}
		for _, gone := range []created{dies, orphan} {
			if st := d.call(key, "GET", "/sandboxes/"+gone.SandboxID, nil, nil); st != 404 {
				t.Fatalf("round %d: sandbox %s should be gone: %d", round, gone.SandboxID, st)
			}
			if m := sandboxCgroups(gone.SandboxID); len(m) != 0 {
				t.Fatalf("round %d: cgroups of %s left: %v", round, gone.SandboxID, m)
			}
			if fileExists(filepath.Join(dir, "sandboxes", gone.SandboxID)) {
				t.Fatalf("round %d: directory of %s left", round, gone.SandboxID)
			}
		}
		// Same token, same processes, same files.
		out, code := d.exec(ctx, keep, "", "sh", "-c", "cat ~/note; pgrep -x sleep >/dev/null && echo sleeping")
		if out != "before\nsleeping\n" || code != 0 {
			t.Fatalf("round %d: after restart: %q %d", round, out, code)
		}
	}
	if st := d.call(key, "POST", "/sandboxes/"+paused.SandboxID+"/resume", map[string]int{"timeout": 60}, nil); st != 201 {
		t.Fatalf("resume after restarts: %d", st)
	}
	if out, _ := d.exec(ctx, paused, "", "echo", "thawed"); out != "thawed\n" {
		t.Fatalf("resumed sandbox: %q", out)
	}
	for _, sb := range []created{keep, paused} {
		if st := d.call(key, "DELETE", "/sandboxes/"+sb.SandboxID, nil, nil); st != 204 {
			t.Fatalf("kill: %d", st)
		}
	}
	d.stop(syscall.SIGTERM)
	hostClean(t, dir)
}

// killSandboxInit SIGKILLs a sandbox's PID 1 from the host.
func killSandboxInit(t *testing.T, id string) {
	t.Helper()
	m := sandboxCgroups(id)
	if len(m) == 0 {
		t.Fatalf("no cgroup for %s", id)
	}
	m[0] = filepath.Join(m[0], "cgroup.procs")
	b, _ := os.ReadFile(m[0])
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(m[0])
		if len(strings.TrimSpace(string(b))) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox %s did not die: %s", id, fmt.Sprint(string(b)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sandboxCgroups lists a long-lived sandbox's cgroup directories (one per
// v1 controller, or the one v2 directory).
func sandboxCgroups(id string) []string {
	v1, _ := filepath.Glob("/sys/fs/cgroup/*/soulbox/sbx-*-" + id)
	v2, _ := filepath.Glob("/sys/fs/cgroup/soulbox/sbx-*-" + id)
	return append(v1, v2...)
}
