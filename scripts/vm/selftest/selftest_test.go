//go:build linux

// Package selftest probes, inside the scripts/vm guest, the kernel features
// SoulBox's runtime relies on: a pure cgroup v2 hierarchy with delegable
// controllers, CLONE_INTO_CGROUP, user+mount+pid namespaces, overlayfs
// mounted inside a user namespace over the guest's 9p-backed root,
// open_tree(2)/move_mount(2) clones, and seccomp filters.
//
// It is its own module (stdlib only) so the main module's ./... skips it.
// Build on the host and run in the guest (as root):
//
//	cd scripts/vm/selftest && go test -c -o /tmp/vm-selftest.test .
//	scripts/vm/run.sh -- /tmp/vm-selftest.test -test.v
package selftest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

const cgroupRoot = "/sys/fs/cgroup"

// amd64 system call numbers not in package syscall.
const (
	sysOpenTree     = 428
	sysMoveMount    = 429
	sysMountSetattr = 442
	sysSeccomp      = 317

	openTreeClone       = 0x1
	openTreeCloexec     = 0x80000
	atRecursive         = 0x8000
	atEmptyPath         = 0x1000
	moveMountFEmptyPath = 0x4
	mountAttrRdonly     = 0x1
	mountAttrNosuid     = 0x2
	mountAttrNodev      = 0x4
)

func TestMain(m *testing.M) {
	if h := os.Getenv("VMT_HELPER"); h != "" {
		os.Exit(helper(h))
	}
	os.Exit(m.Run())
}

// helper runs inside a child process started by a test.
func helper(name string) int {
	switch name {
	case "alloc":
		// Touch 256 MiB; the cgroup's memory.max should OOM-kill us first.
		var keep [][]byte
		for i := 0; i < 256; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
		return 0
	case "seccomp":
		return helperSeccomp()
	case "attach":
		// fd 3: a detached open_tree clone made by the parent in the
		// initial namespaces; attach it inside our new user+mount ns.
		return helperAttach()
	case "opentree":
		return helperOpenTree()
	case "overlay":
		return helperOverlay(os.Getenv("VMT_DIR"), os.Getenv("VMT_LOWER"))
	}
	fmt.Fprintln(os.Stderr, "unknown helper", name)
	return 2
}

func skipUnlessGuest(t *testing.T) {
	t.Helper()
	if os.Getenv("SOULBOX_VM") != "1" {
		t.Skip("runs only inside the scripts/vm guest (SOULBOX_VM=1)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root")
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func write(path, val string) error {
	return os.WriteFile(path, []byte(val), 0o644)
}

func sh(t *testing.T, script string) (string, error) {
	t.Helper()
	out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestKernel(t *testing.T) {
	skipUnlessGuest(t)
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	rel := int8sToString(u.Release[:])
	t.Logf("kernel release %s", rel)
	if !strings.HasPrefix(rel, "6.1.") {
		t.Errorf("want a Debian 12 6.1 kernel, got %s", rel)
	}
}

func int8sToString(a []int8) string {
	b := make([]byte, 0, len(a))
	for _, c := range a {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

func TestPureCgroupV2(t *testing.T) {
	skipUnlessGuest(t)
	if got := read(t, "/proc/self/cgroup"); !strings.HasPrefix(got, "0::/") || strings.Contains(got, "\n") {
		t.Errorf("/proc/self/cgroup = %q, want a single 0::/ line", got)
	}
	mounts := read(t, "/proc/self/mounts")
	for _, l := range strings.Split(mounts, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "cgroup" {
			t.Errorf("cgroup v1 mount present: %s", l)
		}
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != 0x63677270 { // CGROUP2_SUPER_MAGIC
		t.Errorf("%s f_type = %#x, want cgroup2", cgroupRoot, st.Type)
	}
	ctrl := strings.Fields(read(t, cgroupRoot+"/cgroup.subtree_control"))
	t.Logf("root subtree_control: %v", ctrl)
	for _, want := range []string{"cpu", "memory", "pids"} {
		if !contains(ctrl, want) {
			t.Errorf("controller %s not enabled in root subtree_control %v", want, ctrl)
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// newCgroup makes a child cgroup of the caller's cgroup's parent-safe spot:
// the root, or (if we run in a leaf) a sibling created next to us.
func newCgroup(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(cgroupRoot, fmt.Sprintf("vmt-%s-%d", name, os.Getpid()))
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = write(p+"/cgroup.kill", "1")
		for i := 0; i < 100; i++ {
			if err := os.Remove(p); err == nil || os.IsNotExist(err) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	return p
}

func TestCgroupLimits(t *testing.T) {
	skipUnlessGuest(t)
	p := newCgroup(t, "limits")
	for f, v := range map[string]string{
		"memory.max":       "67108864",
		"memory.swap.max":  "0",
		"pids.max":         "32",
		"cpu.max":          "50000 100000",
		"memory.oom.group": "1",
	} {
		if err := write(filepath.Join(p, f), v); err != nil {
			t.Errorf("write %s=%s: %v", f, v, err)
			continue
		}
		if got := read(t, filepath.Join(p, f)); got != v {
			t.Errorf("%s = %q, want %q", f, got, v)
		}
	}
	if _, err := os.Stat(p + "/cgroup.kill"); err != nil {
		t.Errorf("cgroup.kill missing: %v", err)
	}
}

func TestCloneIntoCgroup(t *testing.T) {
	skipUnlessGuest(t)
	p := newCgroup(t, "clone")
	fd, err := syscall.Open(p, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command("/bin/cat", "/proc/self/cgroup")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("clone3(CLONE_INTO_CGROUP): %v: %s", err, out)
	}
	want := "0::/" + filepath.Base(p)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("child cgroup = %q, want %q", got, want)
	}
	// And combined with new namespaces, as the runtime does.
	cmd = exec.Command("/bin/cat", "/proc/self/cgroup")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		UseCgroupFD: true, CgroupFD: fd,
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWCGROUP | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	out, err = cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("clone3(CLONE_INTO_CGROUP|all namespaces): %v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "0::/" {
		t.Errorf("child in its cgroup ns sees %q, want 0::/", got)
	}
}

func TestMemoryOOMKill(t *testing.T) {
	skipUnlessGuest(t)
	p := newCgroup(t, "oom")
	if err := write(p+"/memory.max", strconv.Itoa(32<<20)); err != nil {
		t.Fatal(err)
	}
	_ = write(p+"/memory.swap.max", "0")
	fd, err := syscall.Open(p, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VMT_HELPER=alloc")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("want SIGKILL by the OOM killer, got err=%v out=%s", err, out)
	}
	ev := read(t, p+"/memory.events")
	if !strings.Contains(ev, "oom_kill 1") {
		t.Errorf("memory.events has no oom_kill 1:\n%s", ev)
	}
	t.Logf("peak: memory.peak not in 6.1; memory.events: %s", strings.ReplaceAll(ev, "\n", ", "))
}

func TestUnshareNamespaces(t *testing.T) {
	skipUnlessGuest(t)
	for _, args := range [][]string{
		{"-Urmpf", "--mount-proc", "true"},
		{"-Urmpfnuic", "--mount-proc", "sh", "-c", "test $$ = 1 && cat /proc/self/uid_map"},
	} {
		out, err := exec.Command("/usr/bin/unshare", args...).CombinedOutput()
		if err != nil {
			t.Errorf("unshare %v: %v: %s", args, err, out)
		} else {
			t.Logf("unshare %v: ok %s", args, bytes.TrimSpace(out))
		}
	}
}

// overlayScript mounts an overlay inside `unshare -Urm` with the given lower
// and upper-on-tmpfs (or upper given), then reads and writes through it.
func overlayScript(lower, upperBase, extra string) string {
	return fmt.Sprintf(`set -e
base=%s
mkdir -p "$base"
mount -t tmpfs vmt "$base"
mkdir -p "$base/u" "$base/w" "$base/m"
mount -t overlay overlay -o lowerdir=%s,upperdir="$base/u",workdir="$base/w"%s "$base/m"
test -x "$base/m/bin/sh"
echo hi >"$base/m/new-file"
rm -f "$base/m/bin/true" 2>/dev/null || true
test ! -e "$base/m/bin/true"
echo ok`, upperBase, lower, extra)
}

func TestOverlayInUserns(t *testing.T) {
	skipUnlessGuest(t)
	tmp := t.TempDir()
	cases := []struct{ name, lower, extra string }{
		{"lower=/usr (overlay root over 9p)", "/usr", ""},
		{"lower=/usr userxattr", "/usr", ",userxattr"},
		{"lower=raw 9p /run/soulbox/host/usr", "/run/soulbox/host/usr", ""},
		{"two lowers: tmpfs skeleton + /usr", "", ""},
	}
	for _, c := range cases {
		c := c
		t.Run(c.name, func(t *testing.T) {
			script := overlayScript(c.lower, filepath.Join(tmp, "x"), c.extra)
			if c.lower == "" {
				// Skeleton on tmpfs as topmost lower, /usr below it.
				script = fmt.Sprintf(`set -e
base=%s
mkdir -p "$base"
mount -t tmpfs vmt "$base"
mkdir -p "$base/skel/etc" "$base/u" "$base/w" "$base/m"
echo skel >"$base/skel/etc/marker"
mount -t overlay overlay -o lowerdir="$base/skel":/usr,upperdir="$base/u",workdir="$base/w" "$base/m"
test -x "$base/m/bin/sh" && cat "$base/m/etc/marker"`, filepath.Join(tmp, "y"))
			}
			out, err := exec.Command("/usr/bin/unshare", "-Urm", "/bin/sh", "-c", script).CombinedOutput()
			if err != nil {
				dm, _ := exec.Command("sh", "-c", "dmesg | grep -i overlay | tail -3").CombinedOutput()
				t.Errorf("%v: %s\ndmesg: %s", err, out, dm)
				return
			}
			t.Logf("ok: %s", bytes.TrimSpace(out))
		})
	}
}

func helperOpenTree() int {
	// In a new user+mount ns: clone /usr, make it read-only, attach it.
	fd, _, e := syscall.Syscall(sysOpenTree, uintptr(atFDCWD), uintptr(unsafe.Pointer(bytePtr("/usr"))), openTreeClone|openTreeCloexec)
	if e != 0 {
		fmt.Println("open_tree:", e)
		return 1
	}
	if err := mountSetattrRO(int(fd)); err != nil {
		fmt.Println("mount_setattr:", err)
		return 1
	}
	return attachAndCheck(int(fd))
}

func helperAttach() int { return attachAndCheck(3) }

var atFDCWD = -100 // AT_FDCWD (a var: negative constants do not convert to uintptr)

func bytePtr(s string) *byte {
	b, _ := syscall.BytePtrFromString(s)
	return b
}

func mountSetattrRO(fd int) error {
	attr := struct {
		set, clr, propagation, usernsFD uint64
	}{set: mountAttrRdonly | mountAttrNosuid | mountAttrNodev}
	_, _, e := syscall.Syscall6(sysMountSetattr, uintptr(fd), uintptr(unsafe.Pointer(bytePtr(""))), atEmptyPath, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if e != 0 {
		return e
	}
	return nil
}

func attachAndCheck(fd int) int {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fmt.Println("make private:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "vmt-attach-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	if err := syscall.Mount("vmt", dir, "tmpfs", 0, ""); err != nil {
		fmt.Println("tmpfs:", err)
		return 1
	}
	target := dir + "/usr"
	if err := os.Mkdir(target, 0o755); err != nil {
		fmt.Println(err)
		return 1
	}
	_, _, e := syscall.Syscall6(sysMoveMount, uintptr(fd), uintptr(unsafe.Pointer(bytePtr(""))), uintptr(atFDCWD), uintptr(unsafe.Pointer(bytePtr(target))), moveMountFEmptyPath, 0)
	if e != 0 {
		fmt.Println("move_mount:", e)
		return 1
	}
	if _, err := os.Stat(target + "/bin/sh"); err != nil {
		fmt.Println("attached tree unreadable:", err)
		return 1
	}
	if err := os.WriteFile(target+"/vmt-write", []byte("x"), 0o644); err == nil {
		fmt.Println("attached tree is writable, want read-only")
		return 1
	}
	fmt.Println("attached", target)
	return 0
}

// nsAttr: new user+mount ns whose root is an unprivileged host uid range,
// as in the runtime (root of the guest is not mapped).
func nsAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
	}
}

// helperOverlay mounts tmpfs on dir, then an overlay of lower (":"-list)
// with upper/work on that tmpfs, and reads and writes through it.
func helperOverlay(dir, lower string) int {
	if err := syscall.Mount("vmt", dir, "tmpfs", 0, "mode=0755"); err != nil {
		fmt.Println("tmpfs:", err)
		return 1
	}
	for _, d := range []string{"u", "w", "m"} {
		if err := os.Mkdir(dir+"/"+d, 0o755); err != nil {
			fmt.Println(err)
			return 1
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + dir + "/u,workdir=" + dir + "/w"
	if err := syscall.Mount("overlay", dir+"/m", "overlay", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		fmt.Println("overlay", opts+":", err)
		return 1
	}
	if _, err := os.Stat(dir + "/m/bin/sh"); err != nil {
		fmt.Println(err)
		return 1
	}
	if err := os.WriteFile(dir+"/m/new-file", []byte("x"), 0o644); err != nil {
		fmt.Println("write:", err)
		return 1
	}
	// (/usr/bin belongs to an unmapped uid: not writable here, as on a host.)
	fmt.Println("overlay ok:", opts)
	return 0
}

func TestOverlayInUsernsUnprivilegedMap(t *testing.T) {
	skipUnlessGuest(t)
	for _, lower := range []string{"/usr", "/run/soulbox/host/usr", "/etc:/usr"} {
		lower := lower
		t.Run(lower, func(t *testing.T) {
			// Traversable by the unprivileged mapped uid (t.TempDir is 0700).
			dir, err := os.MkdirTemp("/tmp", "vmt-ovl-")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "VMT_HELPER=overlay", "VMT_DIR="+dir, "VMT_LOWER="+lower)
			cmd.SysProcAttr = nsAttr()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("%v: %s", err, out)
			} else {
				t.Logf("%s", bytes.TrimSpace(out))
			}
		})
	}
}

func TestOpenTreeMoveMount(t *testing.T) {
	skipUnlessGuest(t)
	t.Run("clone inside userns", func(t *testing.T) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "VMT_HELPER=opentree")
		cmd.SysProcAttr = nsAttr()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%v: %s", err, out)
		} else {
			t.Logf("%s", bytes.TrimSpace(out))
		}
	})
	t.Run("clone in host ns, attach in userns", func(t *testing.T) {
		// The runtime's way: CloneTree in the parent, move_mount in the init.
		fd, _, e := syscall.Syscall(sysOpenTree, uintptr(atFDCWD), uintptr(unsafe.Pointer(bytePtr("/usr"))), openTreeClone|openTreeCloexec)
		if e != 0 {
			t.Fatalf("open_tree(/usr): %v", e)
		}
		f := os.NewFile(fd, "usr-clone")
		defer f.Close()
		if err := mountSetattrRO(int(fd)); err != nil {
			t.Fatalf("mount_setattr: %v", err)
		}
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "VMT_HELPER=attach")
		cmd.ExtraFiles = []*os.File{f}
		cmd.SysProcAttr = nsAttr()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("%v: %s", err, out)
		} else {
			t.Logf("%s", bytes.TrimSpace(out))
		}
	})
	t.Run("recursive clone of /", func(t *testing.T) {
		fd, _, e := syscall.Syscall(sysOpenTree, uintptr(atFDCWD), uintptr(unsafe.Pointer(bytePtr("/"))), openTreeClone|openTreeCloexec|atRecursive)
		if e != 0 {
			t.Fatalf("open_tree(/, AT_RECURSIVE): %v", e)
		}
		syscall.Close(int(fd))
	})
}

// BPF program: getppid -> ERRNO(EPERM), everything else allowed.
func helperSeccomp() int {
	runtime.LockOSThread()
	type sockFilter struct {
		code uint16
		jt   uint8
		jf   uint8
		k    uint32
	}
	const (
		bpfLdWAbs       = 0x20
		bpfJeqK         = 0x15
		bpfRetK         = 0x06
		retAllow        = 0x7fff0000
		retErrno        = 0x00050000
		auditArchX86_64 = 0xc000003e
		prSetNoNewPrivs = 38
	)
	prog := []sockFilter{
		{bpfLdWAbs, 0, 0, 4}, // arch
		{bpfJeqK, 1, 0, auditArchX86_64},
		{bpfRetK, 0, 0, 0},   // kill
		{bpfLdWAbs, 0, 0, 0}, // nr
		{bpfJeqK, 0, 1, uint32(syscall.SYS_GETPPID)},
		{bpfRetK, 0, 0, retErrno | uint32(syscall.EPERM)},
		{bpfRetK, 0, 0, retAllow},
	}
	fprog := struct {
		len    uint16
		filter *sockFilter
	}{uint16(len(prog)), &prog[0]}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0, 0, 0, 0); e != 0 {
		fmt.Println("no_new_privs:", e)
		return 1
	}
	// SECCOMP_SET_MODE_FILTER=1, SECCOMP_FILTER_FLAG_TSYNC=1
	if _, _, e := syscall.RawSyscall(sysSeccomp, 1, 1, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		fmt.Println("seccomp:", e)
		return 1
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0); e != syscall.EPERM {
		fmt.Println("getppid not filtered, errno", e)
		return 1
	}
	st, _ := os.ReadFile("/proc/thread-self/status")
	for _, l := range strings.Split(string(st), "\n") {
		if strings.HasPrefix(l, "Seccomp") || strings.HasPrefix(l, "NoNewPrivs") {
			fmt.Println(l)
		}
	}
	return 0
}

func TestSeccomp(t *testing.T) {
	skipUnlessGuest(t)
	t.Logf("actions_avail: %s", read(t, "/proc/sys/kernel/seccomp/actions_avail"))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VMT_HELPER=seccomp")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("%v: %s", err, out)
	} else {
		t.Logf("%s", bytes.TrimSpace(out))
	}
}
