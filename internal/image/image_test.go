package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type entry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func tarOf(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: mtime, Uid: 0, Gid: 0}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func rootfsTar(t *testing.T, extra ...entry) *bytes.Buffer {
	return tarOf(t, append([]entry{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "./usr/bin/tool", typ: tar.TypeReg, mode: 0o4755, body: "#!/bin/sh\necho tool\n"},
		{name: "./bin", typ: tar.TypeSymlink, link: "usr/bin"},
		{name: "./etc/os-release", typ: tar.TypeReg, body: "ID=test\n"}, // parent not listed
		{name: "./etc/localtime", typ: tar.TypeSymlink, link: "/usr/share/zoneinfo/UTC"},
		{name: "./usr/bin/tool2", typ: tar.TypeLink, link: "./usr/bin/tool"},
		{name: "./dev/null", typ: tar.TypeChar},
		{name: "./tmp/", typ: tar.TypeDir, mode: 0o1777},
	}, extra...)...)
}

func TestImport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("importing keeps the archive's owners: needs root")
	}
	s := Store{Dir: t.TempDir()}
	info, err := s.Import("demo", rootfsTar(t), false)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "demo" || info.Skipped != 1 || info.Files != 8 {
		t.Errorf("info %+v: want 8 entries (not the root) and 1 device node skipped", info)
	}
	root, err := s.Root("demo")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, "usr/bin/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 || !fi.ModTime().Equal(time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)) {
		t.Errorf("usr/bin/tool: mode %v, mtime %v: want the archive's", fi.Mode(), fi.ModTime())
	}
	if target, _ := os.Readlink(filepath.Join(root, "etc/localtime")); target != "/usr/share/zoneinfo/UTC" {
		t.Errorf("etc/localtime -> %q: symlinks are kept as they are", target)
	}
	if st, _ := os.Stat(filepath.Join(root, "usr/bin/tool2")); !os.SameFile(st, fi) {
		t.Error("usr/bin/tool2 is not a hard link of usr/bin/tool")
	}
	if fi, err := os.Stat(filepath.Join(root, "tmp")); err != nil || fi.Mode()&os.ModeSticky == 0 {
		t.Errorf("tmp: %v %v: want the sticky bit", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "dev/null")); err == nil {
		t.Error("a device node was imported")
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "demo" {
		t.Errorf("List = %+v, %v", list, err)
	}
	// A second import needs replace; with it, the new content wins.
	if _, err := s.Import("demo", rootfsTar(t), false); !errors.Is(err, ErrExists) {
		t.Errorf("import over an existing image: %v, want ErrExists", err)
	}
	if _, err := s.Import("demo", rootfsTar(t, entry{name: "./etc/new", typ: tar.TypeReg, body: "x"}), true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "demo", "rootfs", "etc/new")); err != nil {
		t.Errorf("replaced image lacks the new file: %v", err)
	}
	if err := s.Remove("demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Root("demo"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Root after Remove: %v, want ErrNotFound", err)
	}
	if entries, _ := os.ReadDir(s.Dir); len(entries) != 0 {
		t.Errorf("left in the image directory: %v", entries)
	}
}

// TestImportStaysInside: no entry of a hostile archive lands outside the
// image, and a failed import leaves nothing.
func TestImportStaysInside(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("importing keeps the archive's owners: needs root")
	}
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	if err := os.WriteFile(victim, []byte("intact"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := Store{Dir: t.TempDir()}

	// "../" and absolute names are cleaned into the image.
	if _, err := s.Import("dots", rootfsTar(t,
		entry{name: "../../../../" + victim, typ: tar.TypeReg, body: "overwritten"},
		entry{name: victim, typ: tar.TypeReg, body: "overwritten"},
	), false); err != nil {
		t.Fatal(err)
	}
	root, _ := s.Root("dots")
	if b, err := os.ReadFile(filepath.Join(root, victim)); err != nil || string(b) != "overwritten" {
		t.Errorf("the cleaned entry is not inside the image: %q %v", b, err)
	}

	// Writing through a symlink that leaves the image fails the import.
	for name, tarball := range map[string]*bytes.Buffer{
		"absolute": rootfsTar(t,
			entry{name: "./escape", typ: tar.TypeSymlink, link: outside},
			entry{name: "./escape/victim", typ: tar.TypeReg, body: "overwritten"}),
		"relative": rootfsTar(t,
			entry{name: "./usr/escape", typ: tar.TypeSymlink, link: "../../../../../../../.." + outside},
			entry{name: "./usr/escape/victim", typ: tar.TypeReg, body: "overwritten"}),
		"hard link": rootfsTar(t,
			entry{name: "./esc", typ: tar.TypeSymlink, link: outside},
			entry{name: "./stolen", typ: tar.TypeLink, link: "./esc/victim"}),
	} {
		_, err := s.Import("evil", tarball, false)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: import = %v, want ErrInvalid", name, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "intact" {
		t.Errorf("a file outside the image was changed: %q", b)
	}
	if _, err := s.Root("evil"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a failed import left an image: %v", err)
	}

	// Not a root file system; a truncated stream.
	if _, err := s.Import("nousr", tarOf(t, entry{name: "etc/x", typ: tar.TypeReg}), false); !errors.Is(err, ErrInvalid) {
		t.Errorf("archive without /usr: %v, want ErrInvalid", err)
	}
	full := rootfsTar(t).Bytes()
	if _, err := s.Import("cut", bytes.NewReader(full[:700]), false); !errors.Is(err, ErrInvalid) {
		t.Errorf("truncated archive: %v, want ErrInvalid", err)
	}
	entries, _ := os.ReadDir(s.Dir)
	if len(entries) != 1 {
		t.Errorf("image directory holds %v, want only dots", entries)
	}
}

func TestValidName(t *testing.T) {
	for name, ok := range map[string]bool{
		"julia": true, "py3.12": true, "a_b-c": true, "0": true,
		"": false, "Julia": false, "-x": false, ".hidden": false, "a/b": false, "..": false,
		"host": false, "base": false, "code-interpreter-v1": false,
		"x234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		if err := ValidName(name); (err == nil) != ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

// TestHoldKeepsFiles: an image removed or replaced while held keeps its
// files until the last holder lets go.
func TestHoldKeepsFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("importing keeps the archive's owners: needs root")
	}
	s := Store{Dir: t.TempDir()}
	if _, err := s.Import("demo", rootfsTar(t, entry{name: "./usr/share/v", typ: tar.TypeReg, body: "one"}), false); err != nil {
		t.Fatal(err)
	}
	held, err := s.Hold("demo")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import("demo", rootfsTar(t, entry{name: "./usr/share/v", typ: tar.TypeReg, body: "two"}), true); err != nil {
		t.Fatal(err)
	}
	read := func(root string) string {
		b, _ := os.ReadFile(filepath.Join(root, "usr/share/v"))
		return string(b)
	}
	root, _ := s.Root("demo")
	if got, now := read(RootOf(held)), read(root); got != "one" || now != "two" {
		t.Fatalf("held image reads %q, the replacement %q; want one and two", got, now)
	}
	held2, err := s.Hold("demo")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("demo"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hold("demo"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Hold after Remove: %v, want ErrNotFound", err)
	}
	if read(RootOf(held)) != "one" || read(RootOf(held2)) != "two" {
		t.Fatal("a removed image's files went while held")
	}
	trash := filepath.Join(s.Dir, trashDir)
	if entries, _ := os.ReadDir(trash); len(entries) != 2 {
		t.Errorf("trash holds %d images, want the 2 held ones", len(entries))
	}
	held.Close()
	s.EmptyTrash()
	if entries, _ := os.ReadDir(trash); len(entries) != 1 {
		t.Errorf("trash holds %d images after one holder let go, want 1", len(entries))
	}
	held2.Close()
	s.EmptyTrash()
	if entries, _ := os.ReadDir(trash); len(entries) != 0 {
		t.Errorf("trash holds %d images after every holder let go, want 0", len(entries))
	}
}
