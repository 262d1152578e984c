package rootfs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Identity of the unprivileged user that runs tenant code inside.
const (
	UserName = "user"
	UserUID  = 1000
	UserGID  = 1000
	UserHome = "/home/user"
	Hostname = "soulbox"
)

// Tree is a detached mount (an open_tree(2) clone made by the host-side
// parent, already read-only, nosuid and nodev) attached at Target.
type Tree struct {
	Target string // absolute path inside the sandbox
	FD     int    // descriptor number in the init process
}

// CopyIn is a file copied into the user's home before the sandbox starts.
type CopyIn struct {
	Name string // relative path under the home directory
	FD   int    // readable descriptor in the init process
	Mode uint32 // permission bits
}

// Layout is everything Assemble needs; it is sent from the host-side
// parent to the init as JSON.
type Layout struct {
	Staging   string   // an empty host directory; a private tmpfs is mounted on it
	Lowers    []string // overlay lower directories, topmost first
	Trees     []Tree
	DiskBytes int64 // size of the writable layer (tmpfs upper)
	ShmBytes  int64 // size of /dev/shm
	CopyIn    []CopyIn
	// ResolvConf, if set, replaces /etc/resolv.conf (read-only): the
	// nameservers of a sandbox with egress.
	ResolvConf string `json:",omitempty"`
}

// devices are bound from the host's /dev; everything else in /dev is
// created fresh.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// procMaskFiles are hidden behind /dev/null; procMaskDirs behind an empty
// read-only tmpfs; procReadOnly are made read-only.
var (
	procMaskFiles = []string{"kcore", "keys", "key-users", "timer_list", "sched_debug",
		"latency_stats", "kallsyms", "kmsg", "vmallocinfo", "slabinfo", "pagetypeinfo", "config.gz"}
	procMaskDirs = []string{"acpi", "scsi", "asound", "firmware", "driver"}
	procReadOnly = []string{"sys", "irq", "bus", "fs", "sysrq-trigger"}
)

const mountFlags = unix.MS_NOSUID | unix.MS_NODEV

// BytesPerInode is the inode ratio of the sandbox's tmpfs mounts (the
// writable layer and /dev/shm), that of a fresh ext4 file system. Without
// nr_inodes a tmpfs allows half the host's RAM pages in inodes, whatever
// its size: millions of empty files per sandbox, each costing kernel
// memory and none counted against the disk limit.
const BytesPerInode = 16 << 10

// InodesFor is the nr_inodes of a tmpfs of the given size: one per
// BytesPerInode, at least 1024.
func InodesFor(size int64) int64 {
	return max(size/BytesPerInode, 1024)
}

// Assemble builds the sandbox's root file system and pivots into it. It
// must run as root of a fresh user and mount namespace (the sandbox init),
// single-threadedly with respect to the file system (it changes the cwd).
func Assemble(l Layout) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	opts := "mode=0755,size=" + strconv.FormatInt(l.DiskBytes, 10) + ",nr_inodes=" + strconv.FormatInt(InodesFor(l.DiskBytes), 10)
	if err := unix.Mount("soulbox", l.Staging, "tmpfs", mountFlags, opts); err != nil {
		return fmt.Errorf("mount writable layer: %w", err)
	}
	upper, work, root := l.Staging+"/upper", l.Staging+"/work", l.Staging+"/root"
	for _, d := range []string{upper, work, root} {
		if err := unix.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("mkdir %s: %w", filepath.Base(d), err)
		}
	}
	ovl := "lowerdir=" + strings.Join(l.Lowers, ":") + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", root, "overlay", mountFlags, ovl); err != nil {
		return fmt.Errorf("mount overlay root: %w", err)
	}
	if err := makeDirs(root, l.Trees); err != nil {
		return err
	}
	for _, t := range l.Trees {
		if err := unix.MoveMount(t.FD, "", unix.AT_FDCWD, root+t.Target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return fmt.Errorf("attach %s: %w", t.Target, err)
		}
		unix.Close(t.FD)
	}
	if err := makeDev(root+"/dev", l.ShmBytes); err != nil {
		return err
	}
	if err := unix.Mount("proc", root+"/proc", "proc", mountFlags|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	if l.ResolvConf != "" {
		if err := bindFile(l.Staging+"/resolv.conf", root+"/etc/resolv.conf", l.ResolvConf); err != nil {
			return fmt.Errorf("resolv.conf: %w", err)
		}
	}
	for _, c := range l.CopyIn {
		if err := copyIn(root+UserHome, c); err != nil {
			return err
		}
	}
	if err := pivot(root); err != nil {
		return err
	}
	return maskProc()
}

// makeDirs creates the writable skeleton in the fresh upper layer: mount
// points, /tmp, /root and the user's home.
func makeDirs(root string, trees []Tree) error {
	type dir struct {
		path     string
		mode     uint32
		uid, gid int
	}
	dirs := []dir{
		{"/proc", 0o555, 0, 0}, {"/dev", 0o755, 0, 0}, {"/sys", 0o555, 0, 0},
		{"/tmp", 0o1777, 0, 0}, {"/var", 0o755, 0, 0}, {"/var/tmp", 0o1777, 0, 0},
		{"/root", 0o700, 0, 0}, {"/home", 0o755, 0, 0},
		{UserHome, 0o750, UserUID, UserGID}, {"/run", 0o755, 0, 0},
	}
	for _, t := range trees {
		dirs = append(dirs, dir{t.Target, 0o755, 0, 0})
	}
	for _, d := range dirs {
		p := root + d.path
		if err := unix.Mkdir(p, d.mode); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", d.path, err)
		}
		// mkdir applies the umask; chmod sets the sticky and exact bits.
		if err := unix.Chmod(p, d.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d.path, err)
		}
		if d.uid != 0 || d.gid != 0 {
			if err := unix.Lchown(p, d.uid, d.gid); err != nil {
				return fmt.Errorf("chown %s: %w", d.path, err)
			}
		}
	}
	return nil
}

func makeDev(dev string, shmBytes int64) error {
	if err := unix.Mount("tmpfs", dev, "tmpfs", mountFlags|unix.MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, name := range devices {
		target := dev + "/" + name
		fd, err := unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o666)
		if err != nil {
			return fmt.Errorf("create /dev/%s: %w", name, err)
		}
		unix.Close(fd)
		if err := unix.Mount("/dev/"+name, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", name, err)
		}
	}
	links := [][2]string{
		{"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
	}
	for _, l := range links {
		if err := unix.Symlink(l[0], dev+"/"+l[1]); err != nil {
			return fmt.Errorf("symlink /dev/%s: %w", l[1], err)
		}
	}
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := unix.Mkdir(dev+"/"+d, 0o755); err != nil {
			return fmt.Errorf("mkdir /dev/%s: %w", d, err)
		}
	}
	if err := unix.Mount("devpts", dev+"/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC,
		"newinstance,ptmxmode=0666,mode=0620,gid=5"); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	shmOpts := "mode=1777,size=" + strconv.FormatInt(shmBytes, 10) + ",nr_inodes=" + strconv.FormatInt(InodesFor(shmBytes), 10)
	if err := unix.Mount("shm", dev+"/shm", "tmpfs", mountFlags|unix.MS_NOEXEC, shmOpts); err != nil {
		return fmt.Errorf("mount /dev/shm: %w", err)
	}
	if err := unix.Mount("mqueue", dev+"/mqueue", "mqueue", mountFlags|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /dev/mqueue: %w", err)
	}
	return nil
}

// copyIn writes one file into the home directory and closes its source.
func copyIn(home string, c CopyIn) error {
	defer unix.Close(c.FD)
	return PlaceFile(home, c)
}

// PlaceFile writes the copy-in c into the home directory, owned by the
// sandbox user. It reads c.FD from offset 0 with pread, so the descriptor
// (which stays open) can be placed again. The directory must hold nothing
// the tenant planted (a brand-new sandbox, or a worker's emptied home);
// O_NOFOLLOW and O_EXCL make that explicit.
func PlaceFile(home string, c CopyIn) error {
	name := path.Clean(c.Name)
	if name == "." || strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("copy-in name %q must be a relative path inside the home directory", c.Name)
	}
	in := io.NewSectionReader(fdReaderAt(c.FD), 0, math.MaxInt64)
	dst := home + "/" + name
	if dir := path.Dir(dst); dir != home {
		if err := mkdirAllAs(home, strings.TrimPrefix(dir, home+"/")); err != nil {
			return err
		}
	}
	fd, err := unix.Open(dst, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, c.Mode&0o7777&^0o6000)
	if err != nil {
		return fmt.Errorf("copy-in %s: %w", name, err)
	}
	out := os.NewFile(uintptr(fd), name)
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copy-in %s: %w", name, err)
	}
	if err := unix.Fchmod(fd, c.Mode&0o777); err != nil {
		return fmt.Errorf("copy-in %s: chmod: %w", name, err)
	}
	if err := unix.Fchown(fd, UserUID, UserGID); err != nil {
		return fmt.Errorf("copy-in %s: chown: %w", name, err)
	}
	return nil
}

// fdReaderAt reads a descriptor at explicit offsets (pread), leaving its
// file offset, shared with every other holder, alone.
type fdReaderAt int

func (f fdReaderAt) ReadAt(p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(int(f), p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func mkdirAllAs(home, rel string) error {
	p := home
	for _, part := range strings.Split(rel, "/") {
		p += "/" + part
		if err := unix.Mkdir(p, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("copy-in mkdir %s: %w", strings.TrimPrefix(p, home+"/"), err)
		}
		if err := unix.Lchown(p, UserUID, UserGID); err != nil {
			return fmt.Errorf("copy-in chown %s: %w", strings.TrimPrefix(p, home+"/"), err)
		}
	}
	return nil
}

// pivot makes root the new "/" and detaches the host's old root entirely.
func pivot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("chdir new root: %w", err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

// maskProc hides kernel interfaces that leak host information or offer
// attack surface, and makes the writable parts of /proc read-only.
func maskProc() error {
	for _, f := range procMaskFiles {
		if err := unix.Mount("/dev/null", "/proc/"+f, "", unix.MS_BIND, ""); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mask /proc/%s: %w", f, err)
		}
	}
	for _, d := range procMaskDirs {
		err := unix.Mount("tmpfs", "/proc/"+d, "tmpfs", unix.MS_RDONLY|mountFlags|unix.MS_NOEXEC, "size=0,mode=0555")
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("mask /proc/%s: %w", d, err)
		}
	}
	for _, p := range procReadOnly {
		if err := readOnlyBind("/proc/" + p); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

func readOnlyBind(p string) error {
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", p, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | mountFlags | unix.MS_NOEXEC)
	if err := unix.Mount("", p, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", p, err)
	}
	return nil
}

// CloneTree makes a detached, non-recursive copy of a host directory's
// mount, read-only, nosuid and nodev, for Assemble to attach inside the
// sandbox. It runs in the host-side parent. The descriptor is close-on-exec;
// the caller passes it to the init explicitly.
func CloneTree(dir string) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("rootfs: clone %s: %w", dir, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("rootfs: make %s read-only: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// bindFile writes content to src (in the sandbox's private tmpfs, outside
// its root) and binds it read-only over dst. The template's files belong
// to the host's root, unmapped here, so they cannot be written in place.
func bindFile(src, dst, content string) error {
	fd, err := unix.Open(src, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	_, err = unix.Write(fd, []byte(content))
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return err
	}
	return unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|mountFlags, "")
}
