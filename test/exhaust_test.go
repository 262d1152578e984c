package test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/soulbox-dev/soulbox/internal/rootfs"
	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// fillInodes creates empty files in a directory until it fails, and
// prints the errno and how many it made.
const fillInodes = `import os, sys
d, n = sys.argv[1], 0
try:
    while True:
        os.close(os.open("%s/i%d" % (d, n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        n += 1
except OSError as e:
    print(e.errno, n)
`

// tryLinks tries to hard-link each target into /tmp and the home
// directory and prints one line per attempt: LINKED, or the errno.
const tryLinks = `import os, sys
for t in sys.argv[1:]:
    for d in ("/tmp", "/home/user"):
        dst = d + "/hardlink"
        try:
            os.link(t, dst)
            print("LINKED", t, d)
            os.unlink(dst)
        except OSError as e:
            print(t, d, e.errno)
`

// TestResourceExhaustion: a sandbox runs out of inodes in its writable
// layer (/tmp, /home/user) and in /dev/shm, fills /dev/shm with data, and
// tries hard links to files it must not own; the daemon's file API meets
// hard links. Each case ends with the sandbox killed and HOST-OK.
func TestResourceExhaustion(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	d := startDaemon(t, dir, "--pool", "0")
	base := takeBaseline(t, d)
	c := sdkClient(t, d, key)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	newSandbox := func(t *testing.T, l soulbox.Limits) *soulbox.Sandbox {
		t.Helper()
		s, err := c.Create(ctx, soulbox.CreateOptions{Timeout: 3 * time.Minute, Limits: l})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	run := func(t *testing.T, s *soulbox.Sandbox, cmd string, opts ...soulbox.CommandOption) string {
		t.Helper()
		res, err := s.Commands.Run(ctx, cmd, opts...)
		if err != nil {
			t.Fatalf("%s: %v (%+v)", cmd, err, res)
		}
		return res.Stdout
	}
	end := func(t *testing.T, s *soulbox.Sandbox) {
		t.Helper()
		if err := s.Kill(ctx); err != nil {
			t.Errorf("kill: %v", err)
		}
		hostOK(t, d, base, true)
	}
	// parseFill reads fillInodes' "errno count".
	parseFill := func(t *testing.T, out string) (errno, n int) {
		t.Helper()
		f := strings.Fields(out)
		if len(f) != 2 {
			t.Fatalf("fill printed %q", out)
		}
		errno, _ = strconv.Atoi(f[0])
		n, _ = strconv.Atoi(f[1])
		return errno, n
	}

	t.Run("inodes of the writable layer", func(t *testing.T) {
		// 64 MiB of disk: the layer has rootfs.InodesFor(64 MiB) inodes,
		// /tmp and /home/user share them.
		s := newSandbox(t, soulbox.Limits{MemoryMB: 256, DiskSizeMB: 64})
		limit := int(rootfs.InodesFor(64 << 20))
		for _, where := range []struct{ fill, other string }{{"/home/user/f", "/tmp"}, {"/tmp/f", "/home/user"}} {
			out := run(t, s, fmt.Sprintf("mkdir %s && python3 -c '%s' %s", where.fill, fillInodes, where.fill))
			errno, n := parseFill(t, out)
			// Nearly all of the layer's inodes, never more.
			if errno != 28 || n > limit || n < limit-200 {
				t.Errorf("filling %s: errno %d after %d files, want ENOSPC (28) after %d-%d", where.fill, errno, n, limit-200, limit)
			}
			if out := run(t, s, "touch "+where.other+"/one-more 2>&1; echo $?"); !strings.Contains(out, "No space left") {
				t.Errorf("a file in %s with the layer's inodes used up: %q, want ENOSPC", where.other, out)
			}
			// Deleting gives them back; the sandbox keeps working.
			if out := run(t, s, "rm -rf "+where.fill+" && echo ok > "+where.other+"/after && cat "+where.other+"/after"); out != "ok\n" {
				t.Errorf("after deleting: %q", out)
			}
		}
		end(t, s)
	})

	t.Run("inodes of /dev/shm", func(t *testing.T) {
		// /dev/shm is min(64 MiB, disk): 64 MiB here.
		s := newSandbox(t, soulbox.Limits{MemoryMB: 256, DiskSizeMB: 128})
		limit := int(rootfs.InodesFor(64 << 20))
		errno, n := parseFill(t, run(t, s, fmt.Sprintf("python3 -c '%s' /dev/shm", fillInodes)))
		if errno != 28 || n > limit || n < limit-16 {
			t.Errorf("filling /dev/shm: errno %d after %d files, want ENOSPC (28) after %d-%d", errno, n, limit-16, limit)
		}
		if out := run(t, s, "rm -f /dev/shm/i* && echo ok > /dev/shm/after && cat /dev/shm/after"); out != "ok\n" {
			t.Errorf("after deleting: %q", out)
		}
		end(t, s)
	})

	t.Run("/dev/shm data counts against memory", func(t *testing.T) {
		// 96 MiB of memory, 64 MiB of /dev/shm (256 MiB of disk).
		s := newSandbox(t, soulbox.Limits{MemoryMB: 96, DiskSizeMB: 256})
		// Writing more than /dev/shm holds stops at its size.
		out := run(t, s, "head -c 100M /dev/zero > /dev/shm/fill 2>/tmp/err; echo $?; stat -c %s /dev/shm/fill; cat /tmp/err")
		f := strings.Fields(out)
		if len(f) < 2 || f[0] == "0" || f[1] != strconv.Itoa(64<<20) || !strings.Contains(out, "No space left") {
			t.Errorf("100 MiB into /dev/shm: %q, want a failure with ENOSPC and exactly 64 MiB written", out)
		}
		// 48 MiB of anonymous memory fits in 96 MiB, but not next to the
		// 64 MiB file: the cgroup counts /dev/shm pages (swap is off).
		hog := "python3 -c 'b = bytearray(48 << 20); b[::4096] = b\"x\" * len(b[::4096]); print(\"allocated\")'"
		res, err := s.Commands.Run(ctx, hog)
		if err == nil || strings.Contains(res.Stdout, "allocated") {
			t.Errorf("48 MiB with 64 MiB in /dev/shm under a 96 MiB limit: %+v %v, want the process OOM-killed", res, err)
		}
		if out := run(t, s, "rm /dev/shm/fill && "+hog); out != "allocated\n" {
			t.Errorf("48 MiB after emptying /dev/shm: %q", out)
		}
		end(t, s)
	})

	t.Run("fork bomb next to API calls", func(t *testing.T) {
		// A fork bomb fills the tenant's pids limit; meanwhile 40
		// commands and 40 file writes arrive, so the agent's Go runtime
		// wants more threads, and a thread it cannot create is fatal to
		// it. Tenant processes live in a nested cgroup with the tenant's
		// limit, the agent keeps server.PidsReserve of its own: the
		// commands may fail (no pid left for them), the sandbox must not
		// end.
		s := newSandbox(t, soulbox.Limits{MemoryMB: 512, DiskSizeMB: 64, Pids: 64})
		bomb, err := s.Commands.Start(ctx, "f(){ f|f& }; f; sleep 30", soulbox.WithTimeout(0), soulbox.WithoutCapture())
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		// The bomb ran into the nested cgroup's limit (one more than the
		// tenant's, for the agent's forking thread), which it never
		// exceeds.
		tenant := tenantPidsCgroup(t, s.ID)
		if max, cur := readCgroupInt(t, tenant, "pids.max"), readCgroupInt(t, tenant, "pids.current"); max != 65 || cur > 65 {
			t.Errorf("tenant cgroup: pids.max %d, pids.current %d; want 65 and at most 65", max, cur)
		}
		if ev, _ := os.ReadFile(filepath.Join(tenant, "pids.events")); strings.TrimSpace(string(ev)) == "max 0" {
			t.Errorf("tenant cgroup pids.events %q: the fork bomb never hit the limit", ev)
		}
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
				defer rcancel()
				s.Commands.Run(rctx, "true", soulbox.WithTimeout(10*time.Second))
			}()
			go func() {
				defer wg.Done()
				rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
				defer rcancel()
				s.Files.WriteFile(rctx, fmt.Sprintf("/home/user/w%d", i), []byte("x"))
			}()
		}
		wg.Wait()
		if err := bomb.Kill(ctx); err != nil {
			t.Errorf("kill the fork bomb: %v", err)
		}
		if out := run(t, s, "echo alive"); out != "alive\n" {
			t.Errorf("after the fork bomb: %q", out)
		}
		end(t, s)
	})

	t.Run("hard links", func(t *testing.T) {
		s := newSandbox(t, soulbox.Limits{MemoryMB: 256, DiskSizeMB: 64})
		run(t, s, "true")
		// Host files the template shows read-only, devices, and /proc:
		// no hard link to any of them, as the user or as the sandbox's
		// root (no CAP_FOWNER; protected_hardlinks; other mounts: EXDEV).
		targets := []string{"/usr/bin/python3", "/usr/lib/os-release", "/etc/passwd", "/etc/hosts", "/etc/resolv.conf",
			"/etc/ld.so.cache", "/dev/null", "/dev/zero", "/proc/1/status"}
		real := run(t, s, "realpath "+strings.Join(targets, " "))
		for _, user := range []string{"user", "root"} {
			out := run(t, s, fmt.Sprintf("python3 -c '%s' %s", tryLinks, strings.Join(strings.Fields(real), " ")), soulbox.WithUser(user))
			if strings.Contains(out, "LINKED") {
				t.Errorf("as %s, hard links to files the sandbox does not own:\n%s", user, out)
			}
			if got, want := strings.Count(out, "\n"), 2*len(targets); got != want {
				t.Errorf("as %s: %d attempts reported, want %d:\n%s", user, got, want, out)
			}
			t.Logf("as %s:\n%s", user, out)
		}

		// The sandbox's root makes a secret and links it itself; the user
		// can neither link it nor read it through the link, by command or
		// through the daemon's file API.
		run(t, s, "umask 077 && echo root-secret > /tmp/secret && ln /tmp/secret /tmp/public", soulbox.WithUser("root"))
		if out := run(t, s, "ln /tmp/secret /tmp/mine 2>&1; cat /tmp/public 2>&1; true"); strings.Contains(out, "root-secret") || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("the user and root's secret: %q, want EPERM and no content", out)
		}
		if b, err := s.Files.ReadFile(ctx, "/tmp/public"); err == nil || strings.Contains(string(b), "root-secret") {
			t.Errorf("file API download of a link to root's 0600 file: %q %v, want refused", b, err)
		}

		// An upload to a hard-linked path replaces that name (temporary
		// file renamed into place): it never writes into the inode the
		// other name shares.
		run(t, s, "echo original > /home/user/orig && ln /home/user/orig /home/user/alias")
		if err := s.Files.WriteFile(ctx, "/home/user/alias", []byte("uploaded\n")); err != nil {
			t.Fatal(err)
		}
		if out := run(t, s, "cat /home/user/orig /home/user/alias; stat -c %h /home/user/orig"); out != "original\nuploaded\n1\n" {
			t.Errorf("after uploading to a hard link: %q, want the other name untouched", out)
		}
		// A hard link to a FIFO is still a FIFO: refused, without hanging.
		run(t, s, "mkfifo /home/user/fifo && ln /home/user/fifo /home/user/fifo-link")
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := s.Files.ReadFile(dctx, "/home/user/fifo-link")
		timedOut := dctx.Err() != nil
		dcancel()
		if err == nil || timedOut {
			t.Errorf("download of a hard link to a FIFO: %v (timed out: %v), want refused at once", err, timedOut)
		}
		// Listing shows a linked name as the regular file it is.
		ents, err := s.Files.List(ctx, "/home/user", 1)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name == "alias" && (e.Type != soulbox.TypeFile || e.Size != int64(len("uploaded\n"))) {
				t.Errorf("list: %+v", e)
			}
		}
		end(t, s)
	})
}

// tenantPidsCgroup is the nested cgroup (pids hierarchy on v1) in which a
// long-lived sandbox's tenant processes run.
func tenantPidsCgroup(t *testing.T, id string) string {
	t.Helper()
	for _, pattern := range []string{"/sys/fs/cgroup/pids/soulbox/sbx-*-" + id + "/tenant", "/sys/fs/cgroup/soulbox/sbx-*-" + id + "/tenant"} {
		if m, _ := filepath.Glob(pattern); len(m) == 1 {
			return m[0]
		}
	}
	t.Fatalf("no tenant cgroup for sandbox %s", id)
	return ""
}

func readCgroupInt(t *testing.T, dir, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s/%s: %v", dir, file, err)
	}
	return v
}
