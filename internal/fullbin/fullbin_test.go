package fullbin

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestPruneKeepsOnlyThisVersion(t *testing.T) {
	dir := t.TempDir()
	keep := "soulbox-0123456789abcdef"
	for _, n := range []string{keep, "soulbox-fedcba9876543210", ".soulbox-0123456789abcdef-123", "soulbox-init-0123456789abcdef", "notes"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	prune(dir, keep)
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	want := []string{".soulbox-0123456789abcdef-123", "notes", keep, "soulbox-init-0123456789abcdef"}
	if !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}
