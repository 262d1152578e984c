package filesystem

import (
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
)

// names caches user and group names for the entries of one request, so a
// listing reads /etc/passwd and /etc/group once per distinct id.
type names struct {
	users, groups map[uint32]string
}

func newNames() *names {
	return &names{users: map[uint32]string{}, groups: map[uint32]string{}}
}

func (n *names) user(uid uint32) string {
	if s, ok := n.users[uid]; ok {
		return s
	}
	s := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(s); err == nil {
		s = u.Username
	}
	n.users[uid] = s
	return s
}

func (n *names) group(gid uint32) string {
	if s, ok := n.groups[gid]; ok {
		return s
	}
	s := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(s); err == nil {
		s = g.Name
	}
	n.groups[gid] = s
	return s
}

// entryAt describes name in the directory open as dirfd, whose path is
// p, without following a final symbolic link and without opening the
// entry (so a FIFO or device never blocks). It runs as the user.
func entryAt(dirfd int, name, p string, n *names) (*pb.EntryInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	return entryFromStat(&st, p, n), nil
}

// entryOf is entryAt for a path.
func entryOf(p string, n *names) (*pb.EntryInfo, error) {
	return entryAt(unix.AT_FDCWD, p, p, n)
}

func entryFromStat(st *unix.Stat_t, p string, n *names) *pb.EntryInfo {
	mode := fileMode(st.Mode)
	e := &pb.EntryInfo{
		Name:         path.Base(p),
		Path:         p,
		Size:         st.Size,
		Mode:         uint32(mode.Perm()),
		Permissions:  mode.String(),
		Owner:        n.user(st.Uid),
		Group:        n.group(st.Gid),
		ModifiedTime: timestamppb.New(time.Unix(st.Mtim.Sec, st.Mtim.Nsec)),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		e.Type = pb.FileType_FILE_TYPE_FILE
	case unix.S_IFDIR:
		e.Type = pb.FileType_FILE_TYPE_DIRECTORY
	case unix.S_IFLNK:
		e.Type = pb.FileType_FILE_TYPE_SYMLINK
		target := symlinkTarget(p)
		e.SymlinkTarget = &target
	}
	return e
}

// symlinkTarget is where the link at p finally leads, as an absolute
// path; a dangling link gives its own target resolved against its
// directory.
func symlinkTarget(p string) string {
	if t, err := filepath.EvalSymlinks(p); err == nil {
		return t
	}
	t, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	if !path.IsAbs(t) {
		t = path.Join(path.Dir(p), t)
	}
	return path.Clean(t)
}

// fileMode converts a stat mode to an fs.FileMode (as os.Stat does).
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
