package lang

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// cacheKeyVersion changes when the key's inputs or the entry format change.
const cacheKeyVersion = "soulbox-compile-1"

// toolID identifies the installed compiler: the resolved executable's
// path, inode, size and modification time, which change with every
// package upgrade. It stands for the compiler version without running
// the compiler (a version probe costs a sandbox; javac's takes ~0.5 s).
func (e *Executor) toolID(l *Language) string {
	st := e.Status(l)
	if !st.Available {
		return "unavailable"
	}
	root, err := e.rootOf(l)
	if err != nil {
		return "unavailable"
	}
	p, err := filepath.EvalSymlinks(filepath.Join(root, st.Path))
	if err != nil {
		return "unresolved:" + st.Path
	}
	var s unix.Stat_t
	if err := unix.Stat(p, &s); err != nil {
		return "unstat:" + p
	}
	return fmt.Sprintf("%s:%d:%d:%d.%d", p, s.Ino, s.Size, s.Mtim.Sec, s.Mtim.Nsec)
}

// CacheKey is the content hash under which compiled output is cached:
// the language, its compile command (flags) and extra files, the
// compiler's identity and the source. Each part is length-prefixed so no
// two different inputs hash the same stream.
func CacheKey(l *Language, toolID string, source []byte) string {
	h := sha256.New()
	part := func(b []byte) {
		h.Write([]byte(strconv.Itoa(len(b)) + ":"))
		h.Write(b)
	}
	part([]byte(cacheKeyVersion))
	part([]byte(l.Name))
	for _, a := range l.Compile {
		part([]byte(a))
	}
	part([]byte("|env"))
	for _, a := range l.Env {
		part([]byte(a))
	}
	part([]byte("|extra"))
	names := make([]string, 0, len(l.Extra))
	for n := range l.Extra {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		part([]byte(n))
		part([]byte(l.Extra[n]))
	}
	part([]byte(toolID))
	part(source)
	return hex.EncodeToString(h.Sum(nil))
}

func (e *Executor) cacheKey(l *Language, source []byte) string {
	return CacheKey(l, e.toolID(l), source)
}

func (e *Executor) cachePath(key string) string { return filepath.Join(e.CacheDir, key+".tar") }

// cacheGet reads an entry. Entries hold compiler output, which came from
// a sandbox: they are parsed with the same caps and name rules as the
// sandbox's stream (runtime.ParseFiles), never unpacked onto the host.
func (e *Executor) cacheGet(key string) ([]sbrt.CopyIn, bool) {
	f, err := os.OpenFile(e.cachePath(key), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	files, truncated, err := sbrt.ParseFiles(f, compileCollect())
	if err != nil || truncated || len(files) == 0 {
		return nil, false
	}
	out := make([]sbrt.CopyIn, len(files))
	for i, fl := range files {
		out[i] = sbrt.CopyIn{Name: fl.Path, Data: fl.Data, Mode: os.FileMode(fl.Mode)}
	}
	return out, true
}

// cachePut writes an entry atomically: a temporary file in the cache
// directory, renamed into place.
func (e *Executor) cachePut(key string, files []sbrt.File) error {
	if err := os.MkdirAll(e.CacheDir, 0o700); err != nil {
		return err
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: int64(f.Mode), Size: int64(len(f.Data)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(e.CacheDir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), e.cachePath(key))
}
