package judge

import (
	"bytes"
	"testing"
)

func TestCompare(t *testing.T) {
	f6, _ := ParseCompare("float:1e-6")
	tests := []struct {
		cmp       Comparator
		got, want string
		equal     bool
	}{
		{Exact{}, "1\n", "1\n", true},
		{Exact{}, "1\n", "1", false},
		{Lines{}, "1  \n2\t\r\n\n\n", "1\n2", true},
		{Lines{}, "1 2\n", "1  2\n", false},
		{Lines{}, "\n1\n", "1\n", false},
		{Lines{}, "", "\n\n", true},
		{Tokens{}, " 1\n2  3 ", "1 2\n3", true},
		{Tokens{}, "1 2", "1 2 3", false},
		{f6, "0.3333333", "0.333333333", true},
		{f6, "0.3334", "0.3333", false},
		{f6, "1e9", "1000000000.5", true}, // relative
		{f6, "abc 1.0", "abc 1", true},
		{f6, "nan", "nan", true},
		{f6, "nan", "1", false},
		{f6, "inf", "1e308", false},
	}
	for _, tt := range tests {
		if got := tt.cmp.Equal([]byte(tt.got), []byte(tt.want)); got != tt.equal {
			t.Errorf("%s: Equal(%q, %q) = %v, want %v", tt.cmp, tt.got, tt.want, got, tt.equal)
		}
	}
	for _, bad := range []string{"float:", "float:-1", "float:x", "float:NaN", "fuzzy"} {
		if _, err := ParseCompare(bad); err == nil {
			t.Errorf("ParseCompare(%q) accepted", bad)
		}
	}
	if c, _ := ParseCompare(""); c.String() != "lines" {
		t.Errorf("default comparison %s, want lines", c)
	}
}

// FuzzCompare checks properties every comparator must keep on any input:
// output equals itself; tokens and float are symmetric for equal-token
// inputs and agree with a whitespace-normalised copy.
func FuzzCompare(f *testing.F) {
	f.Add([]byte("1 2\n"), []byte("1 2"))
	f.Add([]byte("0.5 x"), []byte("0.50000001 x"))
	f.Add([]byte("1e308 -0"), []byte("inf 0"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		for _, c := range []Comparator{Exact{}, Lines{}, Tokens{}, Float{Eps: 1e-6}} {
			if !c.Equal(a, a) {
				t.Fatalf("%s: %q not equal to itself", c, a)
			}
			c.Equal(a, b)
		}
		if (Tokens{}).Equal(a, b) != (Tokens{}).Equal(b, a) {
			t.Fatalf("tokens not symmetric on %q %q", a, b)
		}
		norm := bytes.Join(bytes.Fields(a), []byte("\n"))
		if !(Tokens{}).Equal(a, norm) {
			t.Fatalf("tokens: %q differs from its normalised form", a)
		}
		if (Tokens{}).Equal(a, b) && !(Float{Eps: 1e-6}).Equal(a, b) {
			t.Fatalf("float rejects token-equal outputs %q %q", a, b)
		}
	})
}
