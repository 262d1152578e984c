package test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

// TestDaemonLoad keeps 200 sandboxes alive at once, runs a command in
// each in parallel through the API, kills them all and checks that
// nothing is left: processes, mounts, cgroups, uid ranges, daemon fds.
func TestDaemonLoad(t *testing.T) {
	requireRoot(t)
	n := 200
	if testing.Short() {
		n = 40 // the emulated cgroup v2 guest is slow
	}
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir, "--pool", "0") // exact descriptor accounting
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Warm up, then take the daemon's baseline of descriptors.
	first := d.create(key, map[string]any{"timeout": 600})
	d.exec(ctx, first, "", "true")
	if st := d.call(key, "DELETE", "/sandboxes/"+first.SandboxID, nil, nil); st != 204 {
		t.Fatalf("kill: %d", st)
	}
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	baseFDs := countFDs(t, d.cmd.Process.Pid)
	baseHeld := heldSlots()
	t.Logf("daemon descriptors before the load: %v", fdTargets(d.cmd.Process.Pid))

	boxes := make([]created, n)
	var wg sync.WaitGroup
	errs := make(chan string, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var c created
			if st := d.call(key, "POST", "/sandboxes", map[string]any{"timeout": 600, "limits": map[string]any{"memoryMB": 64, "diskSizeMB": 16, "pids": 32}}, &c); st != 201 {
				errs <- "create: " + strconv.Itoa(st)
				return
			}
			boxes[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	var list []map[string]any
	if d.call(key, "GET", "/v2/sandboxes?limit=100", nil, &list); len(list) != min(n, 100) {
		t.Fatalf("first page: %d", len(list))
	}
	// All live at once: one command in each, all in parallel. A command
	// that has not ended after two minutes fails the test with its
	// agent's goroutines (it once hung in a full run).
	results := make(chan string, n)
	stuck := make(chan string, n)
	for i, c := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ectx, ecancel := context.WithTimeout(ctx, 2*time.Minute)
			defer ecancel()
			req := &pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "sh", Args: []string{"-c", "echo $((6*7))-" + strconv.Itoa(i)}}}
			out, code, err := startStream(ectx, d.procClient(c), req)
			if err != nil {
				stuck <- c.SandboxID
				results <- "sandbox " + c.SandboxID + ": " + err.Error()
				return
			}
			if want := "42-" + strconv.Itoa(i) + "\n"; out != want || code != 0 {
				results <- "sandbox " + c.SandboxID + ": " + out
			}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		t.Error(r)
	}
	close(stuck)
	for id := range stuck {
		dumpAgent(t, dir, id)
	}
	for _, c := range boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if st := d.call(key, "DELETE", "/sandboxes/"+c.SandboxID, nil, nil); st != 204 {
				t.Errorf("kill %s: %d", c.SandboxID, st)
			}
		}()
	}
	wg.Wait()
	hostClean(t, dir)
	// Every uid range is free again (others on the host may hold some).
	if held := heldSlots(); held > baseHeld {
		t.Errorf("%d uid ranges held after the load, %d before", held, baseHeld)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		fds := countFDs(t, d.cmd.Process.Pid)
		if fds <= baseFDs {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon holds %d descriptors, %d before the load: %v", fds, baseFDs, fdTargets(d.cmd.Process.Pid))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := d.call("", "GET", "/health", nil, nil); st != 200 {
		t.Fatalf("health after load: %d", st)
	}
}

func countFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func fdTargets(pid int) []string {
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + e.Name())
		out = append(out, e.Name()+"="+l)
	}
	return out
}

// heldSlots counts the uid ranges held on the host.
func heldSlots() int {
	n := 0
	locks, _ := filepath.Glob("/run/soulbox/ids/*")
	for _, l := range locks {
		if f, err := os.Open(l); err == nil {
			if flockTry(f) != nil {
				n++
			}
			f.Close()
		}
	}
	return n
}
