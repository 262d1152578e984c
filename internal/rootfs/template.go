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
const templateFormat = "v5" // v4: copied files keep their modification times; v5: images

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

// topLevel are the root entries a template shows from its source root. A
// symlink (merged-/usr systems: /bin -> usr/bin) is recreated in the
// skeleton; a directory becomes a read-only tree attached at the same
// place. Images show /opt too (software installed there is part of the
// image); the host's /opt is not part of the host template.
var (
	topLevel      = []string{"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"}
	imageTopLevel = append(append([]string{}, topLevel...), "opt")
)

// Template describes a template on the host: a skeleton directory (the
// overlay lower layer) and the trees attached read-only on top of it.
type Template struct {
	Skeleton string   // directory used as the overlay lower layer
	Root     string   // the source root on the host: "/" for the host template
	Trees    []string // absolute paths inside the sandbox, attached from Root
}

// TreeSource is the host directory attached at tree (one of t.Trees).
func (t *Template) TreeSource(tree string) string { return filepath.Join(t.Root, tree) }

// source is what a template is built from.
type source struct {
	name   string // names the skeleton: "host", or an image's name
	root   string
	top    []string
	allEtc bool // copy every world-readable /etc entry, not only etcAllow
}

// EnsureHostTemplate returns the host template, building its skeleton under
// dir if it is missing or older than the host's /etc. Building is atomic
// (a temporary directory renamed into place), so concurrent callers are safe.
func EnsureHostTemplate(dir string) (*Template, error) {
	return ensure(dir, source{name: "host", root: "/", top: topLevel})
}

// EnsureImageTemplate returns the template of the image called name whose
// root file system is root (see internal/image): like the host template,
// but with the image's whole /etc (world-readable files; the sandbox's own
// passwd, group, hosts and resolver files replace the image's) and /opt.
func EnsureImageTemplate(dir, name, root string) (*Template, error) {
	return ensure(dir, source{name: name, root: root, top: imageTopLevel, allEtc: true})
}

func ensure(dir string, src source) (*Template, error) {
	stamp, err := stampOf(src)
	if err != nil {
		return nil, err
	}
	t := &Template{Skeleton: filepath.Join(dir, src.name+"-"+stamp), Root: src.root}
	for _, name := range src.top {
		fi, err := os.Lstat(filepath.Join(src.root, name))
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
	if err := buildSkeleton(tmp, src); err != nil {
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
	pruneOld(dir, src.name, filepath.Base(t.Skeleton))
	return t, nil
}

// stampOf names a skeleton version: it changes when the format or any
// file the skeleton copies is likely to have changed (an image imported
// again has a new /etc inode).
func stampOf(src source) (string, error) {
	h := sha256.New()
	io.WriteString(h, templateFormat+"\n"+src.name+"\n")
	for _, p := range []string{"etc", "etc/alternatives", "etc/ld.so.cache", "etc/ssl/certs"} {
		p = filepath.Join(src.root, p)
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("rootfs: stat %s: %w", p, err)
		}
		fmt.Fprintf(h, "%s %d %d.%d\n", p, st.Ino, st.Mtim.Sec, st.Mtim.Nsec)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// pruneOld removes skeletons of earlier versions of the template called
// name that have not been touched for a day; a sandbox still using one as
// its lower keeps working because the overlay holds references to the
// lower dentries.
func pruneOld(dir, name, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		stamp, ok := strings.CutPrefix(e.Name(), name+"-")
		if e.Name() == keep || !ok || len(stamp) != 16 || strings.Trim(stamp, "0123456789abcdef") != "" {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func buildSkeleton(root string, src source) error {
	for _, name := range src.top {
		target, err := os.Readlink(filepath.Join(src.root, name))
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
	srcEtc := filepath.Join(src.root, "etc")
	entries, err := os.ReadDir(srcEtc)
	if err != nil {
		return fmt.Errorf("rootfs: read %s: %w", srcEtc, err)
	}
	for _, e := range entries {
		if _, generated := generatedEtc()[e.Name()]; generated || !src.allEtc && !allowedEtc(e.Name()) {
			continue
		}
		if err := copyTree(filepath.Join(srcEtc, e.Name()), filepath.Join(etc, e.Name()), e.Name()); err != nil {
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
