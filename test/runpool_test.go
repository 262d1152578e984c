package test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/runpool"
)

const poolDebugLine = "run pool"

// TestRunPool: with a daemon on the host, `soulbox run` runs in one of
// the sandboxes the daemon set up ahead of demand — stdin, streamed
// output and exit status, limit verdicts, the same posture and probe
// results as any sandbox, cancellation when the command is interrupted —
// and falls back to its own set-up when the run does not fit a ready one.
func TestRunPool(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	// The socket of the protocol's first version, as an earlier release
	// left it: the daemon removes it.
	stale := filepath.Join(dir, runpool.FirstSocketName)
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, dir, "--pool", "0", "--run-pool", "2")
	sock := filepath.Join(dir, runpool.SocketName)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if fi, err := os.Stat(sock); err == nil {
			if fi.Mode().Perm() != 0o600 {
				t.Fatalf("run socket mode %v, want 0600", fi.Mode().Perm())
			}
			if _, err := os.Lstat(stale); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the earlier version's run.sock is still there (%v)", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no run socket")
		}
	}
	pooled := workersExpected(t)
	run := func(stdin []byte, flags []string, argv ...string) (stdout, stderr string, code int) {
		t.Helper()
		args := append(append([]string{"run", "--data-dir", dir}, flags...), "--")
		cmd := exec.Command(soulboxBin, append(args, argv...)...)
		cmd.Env = append(os.Environ(), "SOULBOX_DEBUG=1")
		return capture(t, cmd, stdin)
	}
	t.Run("stdio and exit status", func(t *testing.T) {
		out, errOut, code := run([]byte("hello\n"), nil, "sh", "-c", "read x; echo out:$x; echo oops >&2; id -u; exit 5")
		if out != "out:hello\n1000\n" || !strings.Contains(errOut, "oops") || code != 5 {
			t.Fatalf("stdout %q stderr %q exit %d", out, errOut, code)
		}
		if strings.Contains(errOut, poolDebugLine) != pooled {
			t.Errorf("run in the daemon's pool: %v, want %v: %s", !pooled, pooled, errOut)
		}
		// A program that cannot be started: 127 and why, as a shell says
		// it, whether the output is streamed or not, pooled or not.
		for _, flags := range [][]string{nil, {"--no-pool"}} {
			_, errOut, code = run(nil, flags, "no-such-program")
			if code != 127 || !strings.Contains(errOut, "no-such-program: command not found") {
				t.Errorf("%v no-such-program: exit %d, stderr %q", flags, code, errOut)
			}
		}
	})
	t.Run("stdin that never ends", func(t *testing.T) {
		// The client feeds stdin only while the program takes it: one
		// that reads a little, or nothing, still ends the run at once.
		for _, c := range []struct {
			argv []string
			want string
		}{{[]string{"head", "-c", "5"}, "y\ny\ny"}, {[]string{"true"}, ""}} {
			cmd := exec.Command(soulboxBin, append([]string{"run", "--data-dir", dir, "--"}, c.argv...)...)
			cmd.Env = append(os.Environ(), "SOULBOX_DEBUG=1")
			cmd.Stdin = endless{}
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			cmd.WaitDelay = 10 * time.Second // the copy into the command's stdin pipe never ends by itself
			start := time.Now()
			err := cmd.Run()
			if o.String() != c.want || time.Since(start) > 5*time.Second || strings.Contains(e.String(), poolDebugLine) != pooled {
				t.Errorf("%v: stdout %q, %v after %v, stderr %s", c.argv, o.String(), err, time.Since(start), e.String())
			}
		}
	})
	t.Run("malformed requests", func(t *testing.T) {
		// Datagrams the client never sends: each is dropped or refused on
		// its connection, its descriptors closed, and the daemon serves on.
		sendRaw := func(body []byte, fds ...int) {
			t.Helper()
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			var oob []byte
			if len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			if err := unix.Sendmsg(fd, body, oob, &unix.SockaddrUnix{Name: sock}, 0); err != nil {
				t.Fatal(err)
			}
		}
		pipe := func() (r, w int) {
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			return p[0], p[1]
		}
		pair := func(typ int) [2]int {
			p, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		good := runpool.AppendRequest(nil, runpool.Request{Argv: []string{"true"}, Limits: limits.Defaults()})
		sendRaw(good)        // no descriptors
		sendRaw([]byte("x")) // nothing at all
		r, w := pipe()
		r2, w2 := pipe()
		sendRaw(good, r, r2) // the answer's end is not a socket
		dg := pair(unix.SOCK_DGRAM)
		sendRaw(good, r, dg[1]) // nor a datagram socket
		st := pair(unix.SOCK_STREAM)
		sendRaw(good, r, st[1], r2) // three descriptors
		for _, fd := range []int{r, w2, r2, dg[1], st[1]} {
			unix.Close(fd)
		}
		// None of the ends the daemon received is held: the write ends
		// see their readers gone, the socket its peer closed.
		unix.SetNonblock(w, true)
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			_, err := unix.Write(w, []byte("x"))
			if err == unix.EPIPE {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the daemon keeps a pipe of a malformed request: %v", err)
			}
		}
		unix.Close(w)
		unix.Close(st[0])
		unix.Close(dg[0])
		// A request it cannot decode, with proper descriptors: refused
		// on its connection.
		r, w = pipe()
		st = pair(unix.SOCK_STREAM)
		sendRaw(good[:len(good)-1], r, st[1])
		unix.Close(r)
		unix.Close(st[1])
		var frame [256]byte
		n, err := unix.Read(st[0], frame[:])
		if err != nil || n < 5 || frame[0] != runpool.FrameError {
			t.Errorf("a truncated request: answer %q, %v; want an error frame", frame[:max(n, 0)], err)
		}
		unix.Close(st[0])
		unix.Close(w)
		if out, errOut, code := run(nil, nil, "echo", "still serving"); out != "still serving\n" || code != 0 || strings.Contains(errOut, poolDebugLine) != pooled {
			t.Fatalf("after malformed requests: stdout %q exit %d stderr %s", out, code, errOut)
		}
	})
	t.Run("verdicts", func(t *testing.T) {
		for _, c := range []struct {
			flags []string
			argv  []string
			want  string
		}{
			{[]string{"--memory", "64M"}, []string{"python3", "-c", "bytearray(1 << 30)"}, `"status":"MLE"`},
			{[]string{"--timeout", "300ms"}, []string{"sleep", "10"}, `"status":"TLE"`},
			{[]string{"--output-limit", "1K"}, []string{"sh", "-c", "yes"}, `"status":"OLE"`},
			{nil, []string{"sh", "-c", "kill -SEGV $$"}, `"status":"SG"`},
		} {
			out, errOut, _ := run(nil, append([]string{"--json"}, c.flags...), c.argv...)
			if !strings.Contains(out, c.want) || strings.Contains(errOut, poolDebugLine) != pooled {
				t.Errorf("%v %v: %s (stderr %s), want %s from the pool", c.flags, c.argv, out, errOut, c.want)
			}
		}
	})
	t.Run("posture and probe", func(t *testing.T) {
		probe, err := os.ReadFile(probeBin)
		if err != nil {
			t.Fatal(err)
		}
		// The probe arrives on stdin: a pooled run takes no copied files.
		out, errOut, code := run(probe, nil, "sh", "-c", "cat > /tmp/probe && chmod +x /tmp/probe && /tmp/probe")
		if code != 0 || strings.Contains(errOut, poolDebugLine) != pooled {
			t.Fatalf("probe: exit %d, stderr %s", code, errOut)
		}
		checkProbe(t, out)
		arg := fmt.Sprintf("6101.%d", os.Getpid()%1000)
		cmd := exec.Command(soulboxBin, "run", "--data-dir", dir, "--", "sleep", arg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := waitForProcess(t, "sleep\x00"+arg)
		waitUntilSleeping(t, pid)
		checkPosture(t, pid, "run-")
		// Interrupting the command ends the run (in the daemon's sandbox).
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the pooled run outlived its interrupted command")
			}
		}
	})
	t.Run("a reused sandbox keeps nothing of the run before", func(t *testing.T) {
		if !pooled {
			t.Skip("no run pool on this host (cgroup v2 before Linux 6.12)")
		}
		// Each run reports what an earlier one left, then leaves files in
		// every writable directory and a daemonised process. The host uid
		// the sandbox's root maps to (unique among live sandboxes) and its
		// init's start time tell which runs shared a sandbox: with two in
		// the pool and reuse, most of them do.
		const leave = `left=""
for d in /home/user /tmp /var/tmp /dev/shm /dev/mqueue; do [ -z "$(ls -A $d)" ] || left="$left $d"; done
pgrep -x sleep >/dev/null && left="$left process"
echo "$(awk '{print $2}' /proc/self/uid_map)-$(cut -d' ' -f22 /proc/1/stat) ${left:-nothing}"
for d in /home/user /tmp /var/tmp /dev/shm; do echo x > $d/f; done
setsid sleep 300 </dev/null >/dev/null 2>&1 &`
		seen := map[string]int{}
		for i := range 8 {
			out, errOut, code := run(nil, nil, "bash", "-c", leave)
			init, left, _ := strings.Cut(strings.TrimSpace(out), " ")
			if code != 0 || left != "nothing" || !strings.Contains(errOut, poolDebugLine) {
				t.Fatalf("run %d: exit %d, stdout %q (want nothing left), stderr %s", i, code, out, errOut)
			}
			seen[init]++
		}
		if len(seen) == 8 {
			t.Errorf("no sandbox served two runs (reuse is the daemon's default): %v", seen)
		}
	})
	t.Run("falls back when it does not fit", func(t *testing.T) {
		for _, flags := range [][]string{{"--disk", "100M"}, {"--memory", "1G"}, {"--no-pool"}} {
			out, errOut, code := run(nil, flags, "echo", "ok")
			if out != "ok\n" || code != 0 || strings.Contains(errOut, poolDebugLine) {
				t.Errorf("%v: stdout %q exit %d stderr %s, want ok from the command's own sandbox", flags, out, code, errOut)
			}
		}
	})
	if !pooled && !strings.Contains(d.logs.String(), "run pool disabled") {
		t.Errorf("cgroup v2 before Linux 6.12: the daemon should say its run pool is off:\n%s", d.logs)
	}
	d.stop(syscall.SIGTERM)
	hostClean(t, dir)
}

// endless is a stdin that never ends: "y\n" over and over.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = "y\n"[i%2]
	}
	return len(p) &^ 1, nil
}
