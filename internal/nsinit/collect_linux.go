package nsinit

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Collect asks the init to send back, as a tar stream on FD, the regular
// files the program created or modified under Dir.
//
// The init takes a snapshot of Dir (inode, ctime, size of every regular
// file) before it starts the program, and walks Dir again once the program
// has exited. Every path component is opened with O_NOFOLLOW relative to
// its parent's descriptor, so a symbolic link is never followed; anything
// but a regular file is skipped, and FIFOs cannot block the walk (files are
// opened O_NONBLOCK and checked with fstat). The init reads with
// CAP_DAC_READ_SEARCH in the sandbox's user namespace (it keeps only that
// capability while the program runs), which reaches only files owned by
// the sandbox's mapped ids.
//
// The stream is produced inside the sandbox and is untrusted input to the
// host: the runtime parses it with its own caps (runtime.readFiles).
type Collect struct {
	Dir      string // absolute path inside the sandbox
	FD       int    // write end of a pipe to the runtime
	MaxFiles int
	MaxBytes int64 // total content; files beyond it are listed without content
}

// PAX records the init uses to list a file whose content it left out.
const (
	PAXOmitted = "SOULBOX.omitted" // "1" when the content is left out
	PAXSize    = "SOULBOX.size"    // the file's real size
)

// fileID identifies a version of a file: ctime cannot be set by tenant
// code, so a rewrite shows even if the size and mtime are restored.
type fileID struct {
	ino, size   int64
	ctimeSec    int64
	ctimeNsec   int64
	modeAndType uint32
}

type snapshot map[string]fileID

// takeSnapshot lists the regular files under dir (missing dir: empty).
func takeSnapshot(dir string) snapshot {
	s := snapshot{}
	walkFiles(dir, func(rel string, _ int, st *unix.Stat_t) bool {
		s[rel] = idOf(st)
		return true
	})
	return s
}

func idOf(st *unix.Stat_t) fileID {
	return fileID{ino: int64(st.Ino), size: st.Size, ctimeSec: st.Ctim.Sec, ctimeNsec: st.Ctim.Nsec, modeAndType: st.Mode}
}

const maxWalkDepth = 32

// walkFiles calls fn for every regular file under dir with an open
// read-only descriptor (closed after fn returns), in lexical order. fn
// returns false to stop the walk.
func walkFiles(dir string, fn func(rel string, fd int, st *unix.Stat_t) bool) {
	root, err := openPathNoFollow(dir)
	if err != nil {
		return
	}
	defer unix.Close(root)
	walkDir(root, "", 0, fn)
}

func walkDir(dirfd int, prefix string, depth int, fn func(string, int, *unix.Stat_t) bool) bool {
	if depth > maxWalkDepth {
		return true
	}
	names, err := readNames(dirfd)
	if err != nil {
		return true
	}
	sort.Strings(names)
	for _, name := range names {
		rel := prefix + name
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err != nil {
			continue // a symlink (ELOOP), a socket, or gone
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			unix.Close(fd)
			continue
		}
		ok := true
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			ok = walkDir(fd, rel+"/", depth+1, fn)
		case unix.S_IFREG:
			ok = fn(rel, fd, &st)
		}
		unix.Close(fd)
		if !ok {
			return false
		}
	}
	return true
}

// readNames lists a directory's entries, without . and .., from its start.
func readNames(dirfd int) ([]string, error) {
	// The descriptor itself, rewound: its callers use it only as the
	// anchor of *at calls, so its offset is free (a worker empties its
	// directories this way after every case).
	if _, err := unix.Seek(dirfd, 0, io.SeekStart); err != nil {
		return nil, err
	}
	buf := make([]byte, 8<<10)
	var names []string
	for {
		n, err := unix.Getdents(dirfd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names) // without . and ..
	}
}

// openPathNoFollow opens an absolute directory path one component at a
// time, never following a symbolic link.
func openPathNoFollow(p string) (int, error) {
	if !strings.HasPrefix(p, "/") {
		return -1, errors.New("collect: path must be absolute")
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" || part == "." || part == ".." {
			unix.Close(fd)
			return -1, errors.New("collect: bad path")
		}
		next, err := unix.Openat(fd, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// collect writes the files that differ from before as a tar stream. The
// host applies its own caps; these keep the init from reading more than
// it may send.
func collect(c *Collect, before snapshot) {
	out := os.NewFile(uintptr(c.FD), "collect")
	defer out.Close()
	tw := tar.NewWriter(out)
	files, budget := 0, c.MaxBytes
	walkFiles(c.Dir, func(rel string, fd int, st *unix.Stat_t) bool {
		if prev, ok := before[rel]; ok && prev == idOf(st) {
			return true
		}
		files++
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: rel, Mode: int64(st.Mode & 0o777), Size: st.Size,
			ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), Format: tar.FormatPAX,
		}
		if files > c.MaxFiles {
			// One entry over the cap tells the runtime the list is cut.
			hdr.Size = 0
			hdr.PAXRecords = map[string]string{PAXOmitted: "1", PAXSize: strconv.FormatInt(st.Size, 10)}
			tw.WriteHeader(hdr)
			return false
		}
		if st.Size > budget {
			hdr.Size = 0
			hdr.PAXRecords = map[string]string{PAXOmitted: "1", PAXSize: strconv.FormatInt(st.Size, 10)}
			return tw.WriteHeader(hdr) == nil
		}
		budget -= st.Size
		if tw.WriteHeader(hdr) != nil {
			return false
		}
		// Exactly Size bytes: a file that shrank meanwhile is padded, one
		// that grew is cut.
		n, _ := io.Copy(tw, io.LimitReader(fdReader{fd}, st.Size))
		if n < st.Size {
			if _, err := io.CopyN(tw, zeroReader{}, st.Size-n); err != nil {
				return false
			}
		}
		return true
	})
	tw.Close()
}

// fdReader reads from a descriptor it does not own.
type fdReader struct{ fd int }

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(r.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
