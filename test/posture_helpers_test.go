package test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// checkPosture is the host-side posture check every kind of sandbox the
// project creates must pass, for a tenant process pid (uid 1000) whose
// cgroup name starts with cgroupPrefix ("run-" or "sbx-"):
//   - every namespace differs from the host's;
//   - Seccomp 2, NoNewPrivs 1, no capabilities, default signal dispositions,
//     on every thread;
//   - uid 1000 maps to a host uid in SoulBox's range, never root;
//   - only fds 0–2, none a directory;
//   - its own root, and a cwd inside it;
//   - mounts: nosuid everywhere but single device nodes, nodev on every
//     writable mount but device file systems, /usr read-only;
//   - the expected cgroup.
func checkPosture(t *testing.T, pid int, cgroupPrefix string) {
	t.Helper()
	proc := fmt.Sprintf("/proc/%d", pid)
	tasks, _ := filepath.Glob(proc + "/task/*")
	if len(tasks) == 0 {
		t.Fatalf("process %d: no threads", pid)
	}
	for _, task := range tasks {
		st := statusOf(t, task+"/status")
		for field, want := range map[string]string{
			"Seccomp": "2", "NoNewPrivs": "1",
			"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
			"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
			"SigIgn": "0000000000000000",
		} {
			if got := st[field]; got != want {
				t.Errorf("%s: %s = %q, want %q", task, field, got, want)
			}
		}
		if cg, _ := os.ReadFile(task + "/cgroup"); !strings.Contains(string(cg), "/soulbox/"+cgroupPrefix) {
			t.Errorf("%s: not in a soulbox/%s cgroup: %s", task, cgroupPrefix, cg)
		}
	}
	uid := strings.Fields(statusOf(t, proc+"/status")["Uid"])
	var base int64
	if b, err := os.ReadFile(proc + "/uid_map"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 3 && f[0] == "0" {
			fmt.Sscan(f[1], &base)
		}
	}
	if base < 1<<28 || len(uid) == 0 || uid[0] != fmt.Sprint(base+1000) {
		t.Errorf("uid %v with map base %d: want host uid base+1000 in SoulBox's range", uid, base)
	}
	for _, ns := range []string{"user", "mnt", "pid", "net", "uts", "ipc", "cgroup"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		theirs, err := os.Readlink(proc + "/ns/" + ns)
		if err != nil || host == theirs {
			t.Errorf("namespace %s: host %s, sandbox %s (%v): must differ", ns, host, theirs, err)
		}
	}
	fds, _ := os.ReadDir(proc + "/fd")
	var names []string
	for _, fd := range fds {
		names = append(names, fd.Name())
		var st syscall.Stat_t
		if syscall.Stat(proc+"/fd/"+fd.Name(), &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			t.Errorf("fd %s is a directory", fd.Name())
		}
	}
	if strings.Join(names, ",") != "0,1,2" {
		t.Errorf("fds %v, want only 0,1,2", names)
	}
	var hostRoot, root syscall.Stat_t
	syscall.Stat("/", &hostRoot)
	syscall.Stat(proc+"/root/", &root)
	if hostRoot.Dev == root.Dev && hostRoot.Ino == root.Ino {
		t.Error("the sandbox's root is the host's root")
	}
	if cwd, err := os.Readlink(proc + "/cwd"); err != nil || !strings.HasPrefix(cwd, "/") {
		t.Errorf("cwd %q %v", cwd, err)
	}
	mi, err := os.ReadFile(proc + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	usrRO := false
	for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		pre, post, _ := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 6 || len(g) < 1 {
			t.Fatalf("mountinfo line %q", line)
		}
		root, point, opts, fstype := f[3], f[4], ","+f[5]+",", g[0]
		deviceNode := fstype == "devtmpfs" && root != "/"
		if point == "/usr" && strings.Contains(opts, ",ro,") {
			usrRO = true
		}
		if !deviceNode && !strings.Contains(opts, ",nosuid,") {
			t.Errorf("mount %s (%s) lacks nosuid: %s", point, fstype, f[5])
		}
		if strings.Contains(opts, ",rw,") && !deviceNode && fstype != "devpts" && !strings.Contains(opts, ",nodev,") {
			t.Errorf("writable mount %s (%s) lacks nodev: %s", point, fstype, f[5])
		}
	}
	if !usrRO {
		t.Error("/usr is not mounted read-only")
	}
}

func statusOf(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// probeGolden is what test/probe must report in every kind of sandbox:
// the errno (or "ok") of each operation it attempts. Filtered calls give
// the policy's errno and never reach the kernel; the rest are refused by
// the kernel (no capabilities, read-only, not ours) or allowed.
func probeGolden(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("testdata/probe.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkProbe compares the probe's JSON output with the golden file.
func checkProbe(t *testing.T, out string) {
	t.Helper()
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("probe output %q: %v", out, err)
	}
	for op, want := range probeGolden(t) {
		if got[op] != want {
			t.Errorf("probe %s: got %q, want %q", op, got[op], want)
		}
	}
}
