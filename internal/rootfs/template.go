package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// templateFormat changes whenever the skeleton's content rules change, so
// an older skeleton on disk is rebuilt.
const templateFormat = "host-v4" // v4: copied files keep their modification times

// etcAllow lists the host /etc entries (shell patterns) the host template
// shows. Everything else in /etc is absent: no shadow or gshadow, no ssh
// keys, no sudoers, no package-manager or registry credentials (pip.conf,
// npmrc, maven settings), no machine-id. Inside the allowed trees only
// world-readable files are copied, and ssl/private is never copied.
var etcAllow = []string{
	"alternatives", "bash.bashrc", "bindresvport.blacklist", "ca-certificates",
	"ca-certificates.conf", "debian_version", "ethertypes", "fonts", "gai.conf",
	"glvnd", "groff", "gtk-*", "host.conf", "ImageMagick-*", "inputrc", "issue",
	"java-*", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias",
	"localtime", "magic", "magic.mime", "mailcap", "manpath.config",
	"matplotlibrc", "mime.types", "mono", "netconfig", "networks", "os-release",
	"perl", "php", "profile", "profile.d", "protocols", "python3", "python3.*",
	"R", "rpc", "ruby*", "services", "sgml", "shells", "skel", "ssl",
	"terminfo", "timezone", "vim", "X11", "xml",
}

// etcNever is never copied, even inside an allowed tree.
var etcNever = []string{"ssl/private"}

// topLevel are the host root entries the host template shows. A symlink
// (merged-/usr hosts: /bin -> usr/bin) is recreated in the skeleton; a
// directory becomes a read-only tree attached at the same place.
var topLevel = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}

// HostTemplate describes the built-in "host" template: a skeleton directory
// (overlay lower) and the host trees attached read-only on top of it.
type HostTemplate struct {
	Skeleton string   // directory used as the overlay lower layer
	Trees    []string // absolute host directories attached read-only at the same path
}

// EnsureHostTemplate returns the host template, building its skeleton under
// dir if it is missing or older than the host's /etc. Building is atomic
// (a temporary directory renamed into place), so concurrent callers are safe.
func EnsureHostTemplate(dir string) (*HostTemplate, error) {
	stamp, err := hostStamp()
	if err != nil {
		return nil, err
	}
	t := &HostTemplate{Skeleton: filepath.Join(dir, stamp)}
	for _, name := range topLevel {
		fi, err := os.Lstat("/" + name)
		if err == nil && fi.IsDir() {
			t.Trees = append(t.Trees, "/"+name)
		}
	}
	if _, err := os.Stat(filepath.Join(t.Skeleton, "etc", "passwd")); err == nil {
		return t, nil
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return nil, fmt.Errorf("rootfs: create template dir: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return nil, fmt.Errorf("rootfs: create template build dir: %w", err)
	}
	if err := buildSkeleton(tmp); err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("rootfs: chmod skeleton: %w", err)
	}
	if err := os.Rename(tmp, t.Skeleton); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(filepath.Join(t.Skeleton, "etc", "passwd")); serr == nil {
			return t, nil // another process won the race
		}
		return nil, fmt.Errorf("rootfs: install skeleton: %w", err)
	}
	pruneOld(dir, filepath.Base(t.Skeleton))
	return t, nil
}

// hostStamp names a skeleton version: it changes when the format or any
// host file the skeleton copies is likely to have changed.
func hostStamp() (string, error) {
	h := sha256.New()
	io.WriteString(h, templateFormat)
	for _, p := range []string{"/etc", "/etc/alternatives", "/etc/ld.so.cache", "/etc/ssl/certs"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("rootfs: stat %s: %w", p, err)
		}
		fmt.Fprintf(h, "%s %d\n", p, fi.ModTime().UnixNano())
	}
	return "host-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// pruneOld removes skeletons of earlier versions that have not been
// touched for a day; a sandbox still using one as its lower keeps working
// because the overlay holds references to the lower dentries.
func pruneOld(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if e.Name() == keep || !strings.HasPrefix(e.Name(), "host-") {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func buildSkeleton(root string) error {
	for _, name := range topLevel {
		target, err := os.Readlink("/" + name)
		if err != nil {
			continue // absent, or a real directory attached as a tree
		}
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			return fmt.Errorf("rootfs: skeleton symlink %s: %w", name, err)
		}
	}
	etc := filepath.Join(root, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		return fmt.Errorf("rootfs: skeleton etc: %w", err)
	}
	entries, err := os.ReadDir("/etc")
	if err != nil {
		return fmt.Errorf("rootfs: read host /etc: %w", err)
	}
	for _, e := range entries {
		if !allowedEtc(e.Name()) {
			continue
		}
		if err := copyTree(filepath.Join("/etc", e.Name()), filepath.Join(etc, e.Name()), e.Name()); err != nil {
			return err
		}
	}
	for name, content := range generatedEtc() {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("rootfs: skeleton etc/%s: %w", name, err)
		}
	}
	return nil
}

func allowedEtc(name string) bool {
	for _, pat := range etcAllow {
		if ok, _ := filepath.Match(pat, name); ok {
			return true
		}
	}
	return false
}

// copyTree copies src to dst: directories, world-readable regular files and
// symlinks (as links, never followed). rel is the path relative to /etc.
func copyTree(src, dst, rel string) error {
	for _, never := range etcNever {
		if rel == never {
			return nil
		}
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("rootfs: stat %s: %w", src, err)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return fmt.Errorf("rootfs: readlink %s: %w", src, err)
		}
		return os.Symlink(target, dst)
	case fi.IsDir():
		if fi.Mode().Perm()&0o005 != 0o005 {
			return nil
		}
		if err := os.Mkdir(dst, 0o755); err != nil {
			return fmt.Errorf("rootfs: mkdir %s: %w", dst, err)
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return fmt.Errorf("rootfs: read %s: %w", src, err)
		}
		for _, e := range entries {
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), rel+"/"+e.Name()); err != nil {
				return err
			}
		}
		return nil
	case fi.Mode().IsRegular():
		if fi.Mode().Perm()&0o004 == 0 {
			return nil // not meant for other users
		}
		return copyFile(src, dst, fi.Mode().Perm()&0o755, fi.ModTime())
	default:
		return nil // devices, fifos, sockets are never copied
	}
}

// copyFile copies src to a new file dst with mode perm and modification
// time mtime: programs compare it (Python's cached bytecode of
// /etc/python3.11/sitecustomize.py is stale under any other time, and
// was recompiled at every interpreter start, 1.3 ms).
func copyFile(src, dst string, perm fs.FileMode, mtime time.Time) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("rootfs: open %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("rootfs: create %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("rootfs: copy %s: %w", src, err)
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(int(out.Fd()), "", []unix.Timespec{ts, ts}, unix.AT_EMPTY_PATH); err != nil {
		out.Close()
		return fmt.Errorf("rootfs: set times of %s: %w", dst, err)
	}
	return out.Close()
}

// generatedEtc are files the template writes itself rather than copying
// the host's: the sandbox's own users, name resolution and host name.
func generatedEtc() map[string]string {
	uid := strconv.Itoa(UserUID)
	return map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/bash\n" +
			UserName + ":x:" + uid + ":" + uid + ":" + UserName + ":" + UserHome + ":/bin/bash\n" +
			"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"group":         "root:x:0:\ntty:x:5:\nusers:x:100:\n" + UserName + ":x:" + uid + ":\nnogroup:x:65534:\n",
		"hostname":      Hostname + "\n",
		"hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + Hostname + "\n",
		"nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n",
		"resolv.conf":   "# SoulBox: this sandbox has no network egress.\n",
	}
}
