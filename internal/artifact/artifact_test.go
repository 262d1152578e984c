package artifact

import (
	"os"
	"path/filepath"
	"testing"

	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

func TestSaveStaysInside(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	os.WriteFile(secret, []byte("keep"), 0o600)
	// Links an earlier run (or anyone) left in the directory.
	os.Symlink(secret, filepath.Join(dir, "plot.png"))
	os.Symlink(outside, filepath.Join(dir, "sub"))
	files := []sbrt.File{
		{Path: "plot.png", Data: []byte("png"), Mode: 0o4777, Size: 3},
		{Path: "sub/x.txt", Data: []byte("x"), Size: 1},
		{Path: "../escape", Data: []byte("x"), Size: 1},
		{Path: "/etc/evil", Data: []byte("x"), Size: 1},
		{Path: "big", Data: make([]byte, 100), Size: 100},
		{Path: "ok/nested.csv", Data: []byte("a,b"), Size: 3},
	}
	arts := Describe(files, 2)
	err := Save(dir, files, arts, 50)
	if err == nil {
		t.Fatal("unsafe entries were not reported")
	}
	if b, _ := os.ReadFile(secret); string(b) != "keep" {
		t.Fatalf("the file outside was changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(outside, "x.txt")); err == nil {
		t.Fatal("a file was written through a symlinked directory")
	}
	fi, err := os.Lstat(filepath.Join(dir, "plot.png"))
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("plot.png: %v %v, want a regular file 0755 replacing the link", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ok/nested.csv")); string(b) != "a,b" {
		t.Errorf("nested file: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "big")); err == nil {
		t.Error("a file over the size cap was written")
	}
	if arts[0].ContentBase64 != "" || arts[5].SavedTo == "" || arts[0].MimeType != "image/png" {
		t.Errorf("artifacts %+v", arts)
	}
}
