package doctor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/cgroup"
	"github.com/soulbox-dev/soulbox/internal/image"
)

// Checks returns the default host checks, in the order they are shown.
func Checks() []Check {
	return append([]Check{
		{
			Name: "architecture", Required: true,
			Fix:   "SoulBox supports linux/amd64 hosts only",
			Probe: probeArch,
		},
		{
			Name: "kernel", Required: false,
			Fix:   "Linux 5.7 or newer is recommended (clone3 CLONE_INTO_CGROUP, open_tree, pidfd)",
			Probe: probeKernel,
		},
		{
			Name: "root", Required: true,
			Fix:   "run `soulbox run` and `soulbox serve` as root (sudo)",
			Probe: probeRoot,
		},
		{
			Name: "user.max_user_namespaces", Required: true,
			Fix:   "sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d/)",
			Probe: probeMaxUserNS,
		},
		{
			Name: "kernel.unprivileged_userns_clone", Required: false,
			Fix:   "sysctl -w kernel.unprivileged_userns_clone=1 (only needed when not running as root)",
			Probe: probeUnprivUserNSClone,
		},
		{
			Name: "kernel.apparmor_restrict_unprivileged_userns", Required: true,
			Fix:   "run as root, or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
			Probe: probeAppArmorUserNS,
		},
		{
			Name: "user namespace creation", Required: true,
			Fix:   "allow user namespaces (sysctls above; a container runtime's seccomp profile or an LSM may also forbid them)",
			Probe: probeUserNS,
		},
		{
			Name: "overlayfs", Required: true,
			Fix:   "modprobe overlay (kernel CONFIG_OVERLAY_FS)",
			Probe: probeOverlay,
		},
		{
			Name: "seccomp", Required: true,
			Fix:   "use a kernel with CONFIG_SECCOMP_FILTER (Linux ≥ 4.14 for the kill_process action)",
			Probe: probeSeccomp,
		},
		{
			Name: "cgroups", Required: true,
			Fix:   "boot with a cgroup v2 hierarchy offering cpu, memory and pids (systemd.unified_cgroup_hierarchy=1), or mount the v1 memory, cpu, cpuacct, pids and freezer controllers",
			Probe: probeCgroups,
		},
		{
			Name: "cgroup v2 delegation", Required: false,
			Fix:   "cpu, memory and pids must be enableable in /sys/fs/cgroup/cgroup.subtree_control: no process may sit in a non-root cgroup namespace root",
			Probe: probeDelegation,
		},
		{
			Name: "open_tree/move_mount", Required: true,
			Fix:   "Linux ≥ 5.2 is required for the new mount API, and the syscalls must not be blocked by seccomp",
			Probe: probeOpenTree,
		},
		{
			Name: "pidfd/clone3", Required: false,
			Fix:   "Linux ≥ 5.7 (clone3 with CLONE_INTO_CGROUP) lets processes start inside their cgroup; without it they are moved in after fork",
			Probe: probeClone3,
		},
		{
			Name: "fs.protected_*", Required: false,
			Probe: probeProtected,
		},
		{
			Name: "templates", Required: false,
			Fix:   "make template-julia builds the julia template (Julia is not packaged in Debian 12); soulbox template import NAME FILE imports any root file system",
			Probe: probeTemplates,
		},
	}, netChecks()...)
}

// probeTemplates lists the templates and warns when Julia's is missing.
func probeTemplates() (bool, string) {
	infos, err := image.Store{}.List()
	if err != nil {
		return false, err.Error()
	}
	names := []string{"host (built in)"}
	julia := false
	for _, i := range infos {
		names = append(names, i.Name)
		julia = julia || i.Name == "julia"
	}
	detail := strings.Join(names, ", ") + " in " + image.Dir()
	if !julia {
		return false, detail + "; no julia template, so Julia is unavailable"
	}
	return true, detail
}

func probeArch() (bool, string) {
	p := runtime.GOOS + "/" + runtime.GOARCH
	if runtime.GOARCH != "amd64" {
		return false, p + " is not supported"
	}
	return true, p
}

func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

func probeKernel() (bool, string) {
	rel, err := kernelRelease()
	if err != nil {
		return false, err.Error()
	}
	v, err := parseKernelVersion(rel)
	if err != nil {
		return false, err.Error()
	}
	if !v.atLeast(5, 7) {
		return false, rel + " is older than 5.7"
	}
	return true, rel
}

func probeRoot() (bool, string) {
	uid := os.Geteuid()
	if uid != 0 {
		return false, fmt.Sprintf("running as uid %d", uid)
	}
	return true, "running as uid 0"
}

// readSysctl reads /proc/sys/<path>; present is false if the file does
// not exist.
func readSysctl(path string) (val string, present bool, err error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(b)), true, nil
}

func probeMaxUserNS() (bool, string) {
	v, present, err := readSysctl("user/max_user_namespaces")
	switch {
	case err != nil:
		return false, err.Error()
	case !present:
		return false, "/proc/sys/user/max_user_namespaces missing (kernel without CONFIG_USER_NS?)"
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return false, fmt.Sprintf("unparsable value %q", v)
	}
	if n <= 0 {
		return false, "0: user namespaces are disabled"
	}
	return true, v
}

func probeUnprivUserNSClone() (bool, string) {
	v, present, err := readSysctl("kernel/unprivileged_userns_clone")
	switch {
	case err != nil:
		return false, err.Error()
	case !present:
		return true, "not present (upstream kernel)"
	case v == "0" && os.Geteuid() == 0:
		return true, "0 (fine: running as root)"
	case v == "0":
		return false, "0: only root may create user namespaces"
	}
	return true, v
}

func probeAppArmorUserNS() (bool, string) {
	v, present, err := readSysctl("kernel/apparmor_restrict_unprivileged_userns")
	switch {
	case err != nil:
		return false, err.Error()
	case !present:
		return true, "not present"
	case v == "0":
		return true, "0"
	case os.Geteuid() == 0:
		return true, v + " (fine: running as root)"
	}
	return false, v + ": AppArmor restricts unprivileged user namespaces"
}

// probeUserNS starts /bin/true in a new user and mount namespace.
func probeUserNS() (bool, string) {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		// Map our uid to root inside, as the runtime does.
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		return false, "clone(CLONE_NEWUSER|CLONE_NEWNS) of /bin/true: " + err.Error()
	}
	return true, "created a user+mount namespace"
}

func probeOverlay() (bool, string) {
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false, err.Error()
	}
	if !hasFilesystem(b, "overlay") {
		return false, "overlay not listed in /proc/filesystems"
	}
	return true, "overlay in /proc/filesystems"
}

// hasFilesystem reports whether /proc/filesystems content lists fs.
func hasFilesystem(procFilesystems []byte, fs string) bool {
	sc := bufio.NewScanner(bytes.NewReader(procFilesystems))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}

func probeSeccomp() (bool, string) {
	// PR_GET_SECCOMP fails with EINVAL on kernels without CONFIG_SECCOMP.
	mode, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	if err != nil {
		return false, "prctl(PR_GET_SECCOMP): " + err.Error()
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, err.Error()
	}
	if !bytes.Contains(status, []byte("\nSeccomp:")) {
		return false, "/proc/self/status has no Seccomp field"
	}
	avail, err := os.ReadFile("/proc/sys/kernel/seccomp/actions_avail")
	if err != nil {
		return false, "cannot read /proc/sys/kernel/seccomp/actions_avail (no CONFIG_SECCOMP_FILTER?): " + err.Error()
	}
	acts := strings.Fields(string(avail))
	for _, need := range []string{"kill_process", "errno", "allow"} {
		if !slices.Contains(acts, need) {
			return false, "filter action " + need + " not available (have " + strings.Join(acts, " ") + ")"
		}
	}
	return true, fmt.Sprintf("filter mode available (this process: mode %d); actions: %s", mode, strings.Join(acts, " "))
}

func probeCgroups() (bool, string) {
	h, err := cgroup.Detect()
	if err != nil {
		return false, err.Error()
	}
	return true, fmt.Sprintf("%s: %s", h.Version(), strings.Join(h.Controllers(), " "))
}

// probeDelegation reports, on v2, which controllers are enabled for the
// soulbox subtree. Create enables missing ones itself (as root), so the
// check only fails when that cannot work.
func probeDelegation() (bool, string) {
	h, err := cgroup.Detect()
	if err != nil {
		return false, "no usable cgroup hierarchy"
	}
	if h.Version() != cgroup.V2 {
		return true, "not applicable (cgroup v1)"
	}
	root, _ := h.Path("memory")
	rootOn, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if err != nil {
		return false, err.Error()
	}
	detail := "root subtree_control: " + strings.TrimSpace(string(rootOn))
	if b, err := os.ReadFile(filepath.Join(root, cgroup.Parent, "cgroup.subtree_control")); err == nil {
		detail += "; soulbox subtree_control: " + strings.TrimSpace(string(b))
	} else if errors.Is(err, os.ErrNotExist) {
		detail += "; " + cgroup.Parent + "/ not created yet"
	}
	missing := missingControllers(string(rootOn), "cpu", "memory", "pids")
	if len(missing) > 0 && os.Geteuid() != 0 {
		return false, detail + "; not root, cannot enable " + strings.Join(missing, " ")
	}
	if len(missing) > 0 {
		detail += "; will enable " + strings.Join(missing, " ") + " on first use"
	}
	return true, detail
}

func missingControllers(list string, want ...string) []string {
	have := strings.Fields(list)
	var missing []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			missing = append(missing, w)
		}
	}
	return missing
}

func probeOpenTree() (bool, string) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, "/", unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return false, "open_tree: " + err.Error()
	}
	if err := unix.Close(fd); err != nil {
		return false, "close: " + err.Error()
	}
	return true, "open_tree works"
}

// probeClone3 checks pidfd_open and clone3 without creating a process:
// clone3 with a zero-size argument fails with EINVAL where it exists and
// ENOSYS where it does not (or where a seccomp profile hides it), and
// CLONE_INTO_CGROUP needs Linux 5.7.
func probeClone3() (bool, string) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false, "pidfd_open: " + err.Error()
	}
	if err := unix.Close(fd); err != nil {
		return false, "close pidfd: " + err.Error()
	}
	_, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
	if errno == unix.ENOSYS {
		return false, "clone3: ENOSYS"
	}
	rel, err := kernelRelease()
	if err != nil {
		return false, err.Error()
	}
	v, err := parseKernelVersion(rel)
	if err != nil {
		return false, err.Error()
	}
	if !v.atLeast(5, 7) {
		return false, "kernel " + rel + " has clone3 but not CLONE_INTO_CGROUP (5.7)"
	}
	return true, "pidfd_open and clone3 with CLONE_INTO_CGROUP available"
}

func probeProtected() (bool, string) {
	var parts []string
	for _, name := range []string{"protected_symlinks", "protected_hardlinks", "protected_fifos", "protected_regular"} {
		v, present, err := readSysctl("fs/" + name)
		switch {
		case err != nil:
			v = "unreadable"
		case !present:
			v = "absent"
		}
		parts = append(parts, name+"="+v)
	}
	return true, strings.Join(parts, " ")
}

// kernelVersion is a kernel's major.minor.
type kernelVersion struct{ major, minor int }

func (v kernelVersion) atLeast(major, minor int) bool {
	return v.major > major || (v.major == major && v.minor >= minor)
}

// parseKernelVersion parses a release string such as "6.1.0-18-amd64".
func parseKernelVersion(release string) (kernelVersion, error) {
	majS, rest, ok := strings.Cut(release, ".")
	if !ok {
		return kernelVersion{}, fmt.Errorf("unparsable kernel release %q", release)
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	maj, err1 := strconv.Atoi(majS)
	minor, err2 := strconv.Atoi(rest[:end])
	if err1 != nil || err2 != nil {
		return kernelVersion{}, fmt.Errorf("unparsable kernel release %q", release)
	}
	return kernelVersion{maj, minor}, nil
}
