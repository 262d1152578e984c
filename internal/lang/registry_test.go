package lang

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/soulbox-dev/soulbox/internal/image"
)

func TestRegistryData(t *testing.T) {
	want := []string{"python", "javascript", "typescript", "ruby", "go", "rust", "java", "csharp", "php", "bash", "r", "c", "cpp", "julia"}
	seen := map[string]string{}
	var names []string
	for _, l := range All() {
		names = append(names, l.Name)
		for _, n := range append([]string{l.Name}, l.Aliases...) {
			if other, dup := seen[n]; dup {
				t.Errorf("name %q used by %s and %s", n, other, l.Name)
			}
			seen[n] = l.Name
		}
		if l.Source == "" || path.Base(l.Source) != l.Source || strings.HasPrefix(l.Source, ".") {
			t.Errorf("%s: source name %q must be a plain file name", l.Name, l.Source)
		}
		if len(l.Run) == 0 || len(l.Version) == 0 || l.Tool == "" {
			t.Errorf("%s: run, version and tool are required", l.Name)
		}
		if l.Template == "" && len(l.Packages) == 0 {
			t.Errorf("%s: no Debian package and no template: say how to get it", l.Name)
		}
		if l.Template != "" && l.Note == "" {
			t.Errorf("%s: needs a template but has no note saying so", l.Name)
		}
		for name := range l.Extra {
			if path.Base(name) != name {
				t.Errorf("%s: extra file %q must be a plain file name", l.Name, name)
			}
		}
	}
	if got := strings.Join(names, ","); got != strings.Join(want, ",") {
		t.Errorf("languages %s, want %s", got, strings.Join(want, ","))
	}
	for _, c := range []struct{ in, want string }{{"C++", "cpp"}, {"py", "python"}, {".ts", "typescript"}, {"C#", "csharp"}, {"Rust", "rust"}, {"node", "javascript"}} {
		l, ok := Lookup(c.in)
		if !ok || l.Name != c.want {
			t.Errorf("Lookup(%q) = %v, want %s", c.in, l, c.want)
		}
	}
	if _, ok := Lookup("cobol"); ok {
		t.Error("Lookup(cobol) found something")
	}
}

func TestCacheKey(t *testing.T) {
	cpp, _ := Lookup("cpp")
	c, _ := Lookup("c")
	base := CacheKey(cpp, "g++:1", []byte("int main(){}"))
	if base != CacheKey(cpp, "g++:1", []byte("int main(){}")) {
		t.Fatal("the key is not deterministic")
	}
	flags := *cpp
	flags.Compile = append(append([]string{}, cpp.Compile...), "-DX")
	for name, k := range map[string]string{
		"source":   CacheKey(cpp, "g++:1", []byte("int main(){ }")),
		"compiler": CacheKey(cpp, "g++:2", []byte("int main(){}")),
		"language": CacheKey(c, "g++:1", []byte("int main(){}")),
		"flags":    CacheKey(&flags, "g++:1", []byte("int main(){}")),
		// Length prefixes: moving bytes between parts changes the key.
		"boundary": CacheKey(cpp, "g++:1i", []byte("nt main(){}")),
	} {
		if k == base {
			t.Errorf("changing the %s does not change the key", name)
		}
	}
}

func TestStatusUnavailable(t *testing.T) {
	e := &Executor{HostRoot: t.TempDir(), Images: image.Store{Dir: t.TempDir()}}
	py, _ := Lookup("python")
	st := e.Status(py)
	if st.Available || !strings.Contains(st.Hint, "apt-get install python3") {
		t.Errorf("status on an empty root = %+v, want unavailable with the Debian package", st)
	}
	jl, _ := Lookup("julia")
	if st := e.Status(jl); st.Available || !strings.Contains(st.Hint, "make template-julia") {
		t.Errorf("julia without its template = %+v, want unavailable with how to get it", st)
	}
}

// TestStatusTemplate: a language of a template is found in its image.
func TestStatusTemplate(t *testing.T) {
	images := image.Store{Dir: t.TempDir()}
	root := filepath.Join(images.Dir, "julia", "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "usr", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(images.Dir, "julia", "image.json"), []byte(`{"name":"julia"}`), 0o644)
	e := &Executor{HostRoot: t.TempDir(), Images: images}
	jl, _ := Lookup("julia")
	if st := e.Status(jl); st.Available || !strings.Contains(st.Hint, "has no julia") {
		t.Errorf("template without the tool = %+v", st)
	}
	os.WriteFile(filepath.Join(root, "usr", "bin", "julia"), []byte("#!/bin/sh\n"), 0o755)
	if st := e.Status(jl); !st.Available || st.Path != "/usr/bin/julia" {
		t.Errorf("template with the tool = %+v", st)
	}
}

func TestMimeType(t *testing.T) {
	png := []byte("\x89PNG\r\n\x1a\n0000")
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{{"plot.png", png, "image/png"}, {"noext", png, "image/png"}, {"a.CSV", nil, "text/csv"}, {"x.bin", []byte{0, 1, 2}, "application/octet-stream"}} {
		if got := MimeType(c.name, c.data); got != c.want {
			t.Errorf("MimeType(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}
