package runtime

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/soulbox-dev/soulbox/internal/nsinit"
)

type entry struct {
	name string
	typ  byte
	data string
	pax  map[string]string
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Size: int64(len(e.data)), Mode: 0o644, PAXRecords: e.pax, Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
			h.Linkname = "/etc/shadow"
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.data))
		}
	}
	tw.Close()
	return b.Bytes()
}

func TestReadFiles(t *testing.T) {
	c := Collect{MaxFiles: 3, MaxBytes: 10}
	tests := []struct {
		name      string
		entries   []entry
		want      []string // path=data, "!" suffix for omitted
		truncated bool
		err       bool
	}{
		{name: "plain", entries: []entry{{name: "b/x.txt", typ: tar.TypeReg, data: "hi"}, {name: "a.png", typ: tar.TypeReg, data: "png"}},
			want: []string{"a.png=png", "b/x.txt=hi"}},
		{name: "symlink refused", entries: []entry{{name: "a", typ: tar.TypeReg, data: "1"}, {name: "link", typ: tar.TypeSymlink}},
			want: []string{"a=1"}, truncated: true, err: true},
		{name: "hard link refused", entries: []entry{{name: "link", typ: tar.TypeLink}}, truncated: true, err: true},
		{name: "dot-dot refused", entries: []entry{{name: "../../etc/passwd", typ: tar.TypeReg, data: "x"}}, truncated: true, err: true},
		{name: "absolute refused", entries: []entry{{name: "/etc/passwd", typ: tar.TypeReg, data: "x"}}, truncated: true, err: true},
		{name: "unclean refused", entries: []entry{{name: "a//b", typ: tar.TypeReg, data: "x"}}, truncated: true, err: true},
		{name: "duplicate refused", entries: []entry{{name: "a", typ: tar.TypeReg, data: "1"}, {name: "a", typ: tar.TypeReg, data: "2"}},
			want: []string{"a=1"}, truncated: true, err: true},
		{name: "over total", entries: []entry{{name: "a", typ: tar.TypeReg, data: "123456"}, {name: "b", typ: tar.TypeReg, data: "123456"}},
			want: []string{"a=123456"}, truncated: true, err: true},
		{name: "omitted listed", entries: []entry{{name: "big", typ: tar.TypeReg, pax: map[string]string{nsinit.PAXOmitted: "1", nsinit.PAXSize: "999"}}},
			want: []string{"big!"}, truncated: true},
		{name: "too many", entries: []entry{{name: "a", typ: tar.TypeReg}, {name: "b", typ: tar.TypeReg}, {name: "c", typ: tar.TypeReg}, {name: "d", typ: tar.TypeReg}},
			want: []string{"a=", "b=", "c="}, truncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, truncated, err := readFiles(bytes.NewReader(tarOf(t, tt.entries...)), c)
			var got []string
			for _, f := range files {
				if f.Omitted {
					got = append(got, f.Path+"!")
				} else {
					got = append(got, f.Path+"="+string(f.Data))
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") || truncated != tt.truncated || (err != nil) != tt.err {
				t.Errorf("got %v truncated=%v err=%v, want %v truncated=%v err=%v", got, truncated, err, tt.want, tt.truncated, tt.err)
			}
		})
	}
}

// FuzzReadFiles feeds arbitrary bytes as the init's stream: the reader
// must never panic, exceed its caps or accept an unsafe name.
func FuzzReadFiles(f *testing.F) {
	f.Add(tarOf(f, entry{name: "a", typ: tar.TypeReg, data: "x"}))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := Collect{MaxFiles: 4, MaxBytes: 64}
		files, _, _ := readFiles(bytes.NewReader(b), c)
		if len(files) > c.MaxFiles {
			t.Fatalf("%d files over the cap", len(files))
		}
		var total int
		for _, fl := range files {
			total += len(fl.Data)
			if !validRelPath(fl.Path) {
				t.Fatalf("unsafe path %q accepted", fl.Path)
			}
		}
		if int64(total) > c.MaxBytes {
			t.Fatalf("%d bytes over the cap", total)
		}
	})
}
