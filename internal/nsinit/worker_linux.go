package nsinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/execpath"
	"github.com/soulbox-dev/soulbox/internal/fsid"
	"github.com/soulbox-dev/soulbox/internal/rootfs"
)

// WorkerConfig makes the init a worker: once the sandbox is set up it
// runs one program per Job, each a fresh process in the same namespaces,
// and between jobs it kills whatever the program left running, empties
// every directory the tenant can write, and places Files again. The
// runtime resets the cgroup's counters and limits between jobs.
//
// A worker that cannot restore that state (a directory it cannot empty,
// System V IPC objects left behind) reports itself dirty and exits; the
// runtime then starts a new one.
type WorkerConfig struct {
	// Files are placed in the home directory before every job, read from
	// descriptors the init inherited (with pread: they are never used up).
	Files []rootfs.CopyIn
}

// Job is one program for a worker. Its stdin, stdout and stderr arrive
// with it as three descriptors (SCM_RIGHTS).
type Job struct {
	Argv []string
	Env  []string
	Cwd  string
	// Rlimits apply to the program only; the init restores its own after
	// starting it.
	Rlimits []Rlimit
}

// maxJob caps a job message.
const maxJob = 1 << 20

// cleanDirs are the directories a program can write: emptied after each job.
var cleanDirs = []string{rootfs.UserHome, "/tmp", "/var/tmp", "/dev/shm", "/dev/mqueue"}

// serveJobs runs jobs until the runtime closes the control socket (or the
// worker becomes dirty) and returns the init's last event.
func serveJobs(ctl *os.File, w *WorkerConfig, own []Rlimit) Event {
	send := func(ev Event) error {
		b, _ := json.Marshal(ev)
		_, err := ctl.Write(b)
		return err
	}
	// The sandbox is new: only the files need placing.
	dirty := ""
	if err := asSandboxUser(func() error { return placeFiles(w.Files) }); err != nil {
		dirty = err.Error()
	}
	buf := make([]byte, maxJob)
	for {
		if err := send(Event{Kind: EventReady, Dirty: dirty}); err != nil || dirty != "" {
			return Event{Kind: EventError, Error: "worker: " + dirty}
		}
		job, stdio, err := recvJob(int(ctl.Fd()), buf)
		if err != nil {
			// EOF: the runtime is done with this worker.
			return Event{Kind: EventError, Error: "worker: " + err.Error()}
		}
		t0 := time.Now()
		pid, err := startJob(job, stdio, own)
		for _, fd := range stdio {
			unix.Close(fd)
		}
		if err != nil {
			var se startError
			if !errors.As(err, &se) {
				return Event{Kind: EventError, Error: err.Error()}
			}
			send(Event{Kind: EventError, Error: err.Error(), ExecErr: true})
		} else {
			// No "started" event: the runtime waits for the exit (one
			// wake-up of the host less per run).
			status := reap(pid)
			wall := time.Since(t0)
			killAll()
			if send(Event{Kind: EventExit, Status: int(status), DiskFull: diskFull(), WallMicros: max(wall.Microseconds(), 1)}) != nil {
				return Event{Kind: EventError, Error: "worker: report exit"}
			}
		}
		dirty = resetSandbox(w)
	}
}

// recvJob reads one Job and its three descriptors.
func recvJob(ctl int, buf []byte) (Job, []int, error) {
	oob := make([]byte, unix.CmsgSpace(3*4))
	var (
		n, oobn int
		err     error
	)
	// Jobs come back to back while a judge runs: wait for one without
	// giving up the P (see wait_linux.go), then block the ordinary way.
	awaitReadable(ctl, idleAfter)
	for {
		n, oobn, _, _, err = unix.Recvmsg(ctl, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return Job{}, nil, fmt.Errorf("read job: %w", err)
	}
	if n == 0 {
		return Job{}, nil, errors.New("control socket closed")
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err == nil {
		for _, m := range msgs {
			if got, err := unix.ParseUnixRights(&m); err == nil {
				fds = append(fds, got...)
			}
		}
	}
	var job Job
	if err := json.Unmarshal(buf[:n], &job); err != nil || len(fds) != 3 || len(job.Argv) == 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return Job{}, nil, fmt.Errorf("malformed job (%d descriptors)", len(fds))
	}
	return job, fds, nil
}

// startJob starts the program as the sandbox user in its own session,
// under the job's rlimits: the init lowers its own (children inherit
// them), forks, and restores its own.
func startJob(job Job, stdio []int, own []Rlimit) (int, error) {
	path, err := execpath.Look(job.Argv[0], job.Env)
	if err != nil {
		return 0, startError{err}
	}
	if err := setRlimits(job.Rlimits); err != nil {
		setRlimits(own)
		return 0, err
	}
	attr := &syscall.ProcAttr{
		Dir:   job.Cwd,
		Env:   job.Env,
		Files: []uintptr{uintptr(stdio[0]), uintptr(stdio[1]), uintptr(stdio[2])},
		Sys: &syscall.SysProcAttr{
			Setsid:     true,
			Credential: &syscall.Credential{Uid: rootfs.UserUID, Gid: rootfs.UserGID, Groups: []uint32{}},
		},
	}
	pid, ferr := syscall.ForkExec(path, job.Argv, attr)
	if err := setRlimits(own); err != nil {
		if ferr == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
		return 0, err
	}
	if ferr != nil {
		return 0, startError{fmt.Errorf("start %s: %w", job.Argv[0], ferr)}
	}
	return pid, nil
}

func setRlimits(rl []Rlimit) error {
	for _, r := range rl {
		// syscall.Setrlimit: see setupAndStart.
		if err := syscall.Setrlimit(r.Resource, &syscall.Rlimit{Cur: r.Cur, Max: r.Max}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", r.Resource, err)
		}
	}
	return nil
}

// killAll ends every process of the sandbox but the init (kill(-1) spares
// the caller) and reaps them all.
func killAll() {
	unix.Kill(-1, unix.SIGKILL)
	for {
		_, err := wait4(-1, nil, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing left
			return
		}
	}
}

// resetSandbox brings the sandbox back to its state before the first job
// and returns why it could not ("" if it could).
func resetSandbox(w *WorkerConfig) string {
	err := asSandboxUser(func() error {
		for _, d := range cleanDirs {
			if err := emptyDir(d); err != nil {
				return err
			}
		}
		return placeFiles(w.Files)
	})
	if err != nil {
		return err.Error()
	}
	for _, kind := range []string{"shm", "msg", "sem"} {
		if n, err := sysvObjects(kind); err != nil || n > 0 {
			return fmt.Sprintf("System V IPC %s objects left behind", kind)
		}
	}
	return ""
}

func placeFiles(files []rootfs.CopyIn) error {
	for _, f := range files {
		if err := rootfs.PlaceFile(rootfs.UserHome, f); err != nil {
			return err
		}
	}
	return nil
}

// asSandboxUser runs fn with the sandbox user's file system ids, so the
// init removes and creates files with exactly the rights (and ownership)
// of the programs it runs.
func asSandboxUser(fn func() error) error {
	return fsid.As(rootfs.UserUID, rootfs.UserGID, fn)
}

// maxCleanDepth bounds the directory depth emptyDir descends.
const maxCleanDepth = 512

// emptyDir removes everything inside dir (not dir itself), descending
// without following links. It makes directories the tenant locked (mode
// 0) writable first: as their owner it may.
func emptyDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if dir == rootfs.UserHome {
		// The program may have changed its home directory's mode.
		if err := unix.Fchmod(fd, 0o750); err != nil {
			return fmt.Errorf("clean %s: %w", dir, err)
		}
	}
	if err := emptyDirFD(fd, 0); err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	return nil
}

func emptyDirFD(dirfd, depth int) error {
	if depth > maxCleanDepth {
		return errors.New("directories nested too deep")
	}
	for {
		names, err := readNames(dirfd)
		if err != nil {
			return err
		}
		if len(names) == 0 {
			return nil
		}
		for _, name := range names {
			err := unix.Unlinkat(dirfd, name, 0)
			if err == nil || err == unix.ENOENT {
				continue
			}
			if err != unix.EISDIR {
				return fmt.Errorf("remove %s: %w", name, err)
			}
			if err := removeDir(dirfd, name, depth); err != nil {
				return err
			}
		}
		// Loop: readNames may return a batch, and nothing new can appear
		// (every process is gone), so this ends.
	}
}

func removeDir(parent int, name string, depth int) error {
	open := func() (int, error) {
		return unix.Openat(parent, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	fd, err := open()
	if err == unix.EACCES {
		if err := unix.Fchmodat(parent, name, 0o700, 0); err != nil {
			return fmt.Errorf("unlock %s: %w", name, err)
		}
		fd, err = open()
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	// Writable and searchable, whatever the program left.
	if err := unix.Fchmod(fd, 0o700); err != nil {
		unix.Close(fd)
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	err = emptyDirFD(fd, depth+1)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(parent, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// sysvObjects counts the sandbox's System V IPC objects of one kind
// (its own IPC namespace: /proc shows only those).
func sysvObjects(kind string) (int, error) {
	b, err := os.ReadFile("/proc/sysvipc/" + kind)
	if err != nil {
		return 0, err
	}
	lines := strings.Count(strings.TrimRight(string(b), "\n"), "\n")
	return lines, nil // the first line is a header
}
