package test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/runtime"
)

// workerProbe runs in a worker: it reports anything an earlier run left
// (files in every writable directory, processes, System V IPC, a changed
// program file), then leaves all of that behind itself, as a hostile
// submission would to pass state from one test case to the next. (One
// brace group: bash parses it whole before it overwrites its own file.)
const workerProbe = `{
left=""
[ "$(ls -A /home/user)" = "probe.sh" ] || left="$left home:$(ls -A /home/user | tr '\n' ,)"
for d in /tmp /var/tmp /dev/shm /dev/mqueue; do [ -z "$(ls -A $d)" ] || left="$left $d"; done
pgrep -x sleep >/dev/null && left="$left process"
[ "$(ipcs -m | grep -c '^0x')" = 0 ] || left="$left shm"
grep -q '^# probe$' probe.sh || left="$left program-changed"
echo "left:${left:-nothing}"
read line; echo "stdin:$line"
echo data > /home/user/f; echo data > /tmp/f; echo data > /var/tmp/f; echo data > /dev/shm/f
mkdir -p /home/user/locked/deeper /tmp/locked && touch /home/user/locked/deeper/x && chmod 0 /home/user/locked /tmp/locked
echo '# changed' > probe.sh
setsid sleep 300 </dev/null >/dev/null 2>&1 &
exit 3
}
# probe
`

// TestWorker: a worker sandbox runs program after program with each run's
// own limits, and between runs kills what a run left, empties every
// writable directory and restores the program's files; runs that end it
// (a time limit, System V IPC left behind) make it refuse further runs,
// and closing it leaves nothing on the host.
func TestWorker(t *testing.T) {
	requireRoot(t)
	requireTool(t, "ipcmk")
	dir := dataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rt, err := runtime.New(ctx, runtime.Config{DataDir: dir, Exe: soulboxFullBin, AgentExe: soulboxFullBin})
	if err != nil {
		t.Fatal(err)
	}
	max := limits.Defaults()
	if !workersExpected(t) {
		// cgroup v2 before Linux 6.12: the refusal is what there is to check.
		_, err := rt.NewWorker(ctx, runtime.WorkerSpec{Limits: max})
		if !errors.Is(err, runtime.ErrWorkerUnsupported) {
			t.Fatalf("NewWorker on a host that cannot reset memory.peak: %v, want ErrWorkerUnsupported", err)
		}
		return
	}
	newWorker := func() *runtime.Worker {
		t.Helper()
		w, err := rt.NewWorker(ctx, runtime.WorkerSpec{Limits: max, CopyIn: []runtime.CopyIn{{Name: "probe.sh", Data: []byte(workerProbe), Mode: 0o755}}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	run := func(w *runtime.Worker, l limits.Limits, stdin string, argv ...string) (*runtime.Result, error) {
		return w.Run(ctx, runtime.Spec{Argv: argv, Limits: l, Stdin: strings.NewReader(stdin)})
	}
	w := newWorker()
	defer w.Close()
	for i := range 3 {
		if i == 2 {
			// Idle longer than a worker polls for its next job: it then
			// waits the ordinary way, and must still take the job.
			time.Sleep(1500 * time.Millisecond)
		}
		res, err := run(w, max, "case\n", "bash", "probe.sh")
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != runtime.StatusRE || res.ExitCode != 3 || string(res.Stdout) != "left:nothing\nstdin:case\n" {
			t.Fatalf("run %d: %s exit %d stdout %q stderr %q", i, res.Status, res.ExitCode, res.Stdout, res.Stderr)
		}
	}
	// A program that cannot start is a run error; the worker goes on.
	if res, err := run(w, max, "", "no-such-program"); err != nil || res.Status != runtime.StatusRE || res.ExitCode != 127 {
		t.Fatalf("missing program: %+v, %v", res, err)
	}
	// Each run's own memory limit: over it is MLE, and a later run with a
	// larger one gets it (the worker survives the OOM kill).
	hog := []string{"python3", "-c", "b = bytearray(48 << 20); print(len(b))"}
	small := max
	small.MemoryBytes = 32 << 20
	if res, err := run(w, small, "", hog...); err != nil || res.Status != runtime.StatusMLE {
		t.Fatalf("48 MiB under 32 MiB: %+v, %v", res, err)
	}
	if res, err := run(w, max, "", hog...); err != nil || res.Status != runtime.StatusOK {
		t.Fatalf("48 MiB under %d: %+v, %v", max.MemoryBytes, res, err)
	}
	// Limits beyond the worker's are refused.
	big := max
	big.MemoryBytes *= 2
	if _, err := run(w, big, "", "true"); !errors.Is(err, runtime.ErrInvalidSpec) {
		t.Fatalf("run over the worker's limits: %v", err)
	}
	// A wall-time kill ends the worker, after reporting TLE.
	short := max
	short.WallTime = 200 * time.Millisecond
	if res, err := run(w, short, "", "sleep", "10"); err != nil || res.Status != runtime.StatusTLE {
		t.Fatalf("sleep under 200ms: %+v, %v", res, err)
	}
	if _, err := run(w, max, "", "true"); !errors.Is(err, runtime.ErrWorkerGone) {
		t.Fatalf("run after a kill: %v", err)
	}
	w.Close()
	// System V IPC objects cannot be removed by the worker: it retires.
	w = newWorker()
	if res, err := run(w, max, "", "ipcmk", "-M", "4096"); err != nil || res.Status != runtime.StatusOK {
		t.Fatalf("ipcmk: %+v, %v", res, err)
	}
	if _, err := run(w, max, "", "true"); !errors.Is(err, runtime.ErrWorkerGone) {
		t.Fatalf("run after IPC left behind: %v", err)
	}
	w.Close()
	hostClean(t, dir)
}

// workersExpected reports whether this host supports worker sandboxes:
// cgroup v1, or v2 on Linux 6.12 or later (memory.peak can be reset).
func workersExpected(t *testing.T) bool {
	t.Helper()
	if h, err := cgroup.Detect(); err != nil {
		t.Fatal(err)
	} else if h.Version() == cgroup.V1 {
		return true
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 12
}
