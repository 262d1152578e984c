package execpath

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLook(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "data"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	env := []string{"PATH=/nonexistent:" + dir}
	cases := []struct {
		name, want string
		ok         bool
	}{
		{"tool", exe, true}, {"data", "", false}, {"sub", "", false}, {"missing", "", false}, {"/any/path", "/any/path", true},
	}
	for _, tc := range cases {
		got, err := Look(tc.name, env)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Look(%q) = %q, %v; want %q, ok=%v", tc.name, got, err, tc.want, tc.ok)
		}
	}
	if got, err := Look("sh", nil); err != nil || got == "" {
		t.Errorf("Look(sh) without PATH = %q, %v: want the default path searched", got, err)
	}
}
