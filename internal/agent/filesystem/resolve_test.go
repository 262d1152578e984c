package filesystem

import (
	"errors"
	"path"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	const home = "/home/user"
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{"", home, false},
		{"~", home, false},
		{"~/", home, false},
		{"~/a/../b", home + "/b", false},
		{"a.txt", home + "/a.txt", false},
		{"./a//b/", home + "/a/b", false},
		{"../other", "/home/other", false},
		{"../../../../etc", "/etc", false},
		{"/etc/passwd", "/etc/passwd", false},
		{"/..", "/", false},
		{"~root", "", true},
		{"a\x00b", "", true},
		{strings.Repeat("a", maxPathLen+1), "", true},
	} {
		got, err := resolve(tc.in, home)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("resolve(%.30q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, errInvalidPath) {
			t.Errorf("resolve(%.30q): %v is not errInvalidPath", tc.in, err)
		}
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"", "~", "~/x", "a/../..", "/a/./b", "..", "~x", "a\x00", "//x//"} {
		f.Add(s)
	}
	const home = "/home/user"
	f.Fuzz(func(t *testing.T, in string) {
		got, err := resolve(in, home)
		if err != nil {
			if !errors.Is(err, errInvalidPath) {
				t.Fatalf("resolve(%q): %v is not errInvalidPath", in, err)
			}
			return
		}
		if strings.IndexByte(in, 0) >= 0 {
			t.Fatalf("resolve(%q) accepted a NUL byte", in)
		}
		if !path.IsAbs(got) || path.Clean(got) != got || len(got) > maxPathLen {
			t.Fatalf("resolve(%q) = %q: not a clean absolute path", in, got)
		}
		for _, el := range strings.Split(got, "/") {
			if el == ".." || el == "." {
				t.Fatalf("resolve(%q) = %q has a %q element", in, got, el)
			}
		}
		relative := !strings.HasPrefix(in, "/")
		usesDotDot := false
		for _, el := range strings.Split(in, "/") {
			usesDotDot = usesDotDot || el == ".."
		}
		if relative && !usesDotDot && got != home && !strings.HasPrefix(got, home+"/") {
			t.Fatalf("resolve(%q) = %q left home without ..", in, got)
		}
	})
}
