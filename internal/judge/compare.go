package judge

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Comparator decides whether a program's output matches the expected one.
type Comparator interface {
	Equal(got, want []byte) bool
	String() string
}

// ParseCompare reads a comparison mode: exact, lines (the default: trailing
// whitespace of each line and trailing empty lines ignored), tokens
// (whitespace-separated tokens equal), float:EPS (tokens equal, or both
// numbers within EPS absolute or relative).
func ParseCompare(s string) (Comparator, error) {
	switch s {
	case "", "lines":
		return Lines{}, nil
	case "exact":
		return Exact{}, nil
	case "tokens":
		return Tokens{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "float:"); ok {
		eps, err := strconv.ParseFloat(rest, 64)
		if err != nil || !(eps >= 0) || math.IsInf(eps, 0) {
			return nil, fmt.Errorf("compare %q: want float:EPS with EPS a non-negative number", s)
		}
		return Float{Eps: eps}, nil
	}
	return nil, fmt.Errorf("compare %q: want exact, lines, tokens or float:EPS", s)
}

// Exact compares byte for byte.
type Exact struct{}

func (Exact) Equal(got, want []byte) bool { return bytes.Equal(got, want) }
func (Exact) String() string              { return "exact" }

// Lines ignores trailing spaces, tabs and carriage returns on each line,
// and trailing empty lines.
type Lines struct{}

func (Lines) Equal(got, want []byte) bool {
	g, w := normLines(got), normLines(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			return false
		}
	}
	return true
}
func (Lines) String() string { return "lines" }

func normLines(b []byte) [][]byte {
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " \t\r\v\f")
	}
	for len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// Tokens compares whitespace-separated tokens.
type Tokens struct{}

func (Tokens) Equal(got, want []byte) bool {
	g, w := bytes.Fields(got), bytes.Fields(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if !bytes.Equal(g[i], w[i]) {
			return false
		}
	}
	return true
}
func (Tokens) String() string { return "tokens" }

// Float compares tokens; where the expected token is a finite number, the
// output's token must be a number within Eps of it, absolutely or
// relatively. NaN and infinities must match as written.
type Float struct{ Eps float64 }

func (f Float) Equal(got, want []byte) bool {
	g, w := bytes.Fields(got), bytes.Fields(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if bytes.Equal(g[i], w[i]) {
			continue
		}
		wv, err1 := strconv.ParseFloat(string(w[i]), 64)
		gv, err2 := strconv.ParseFloat(string(g[i]), 64)
		if err1 != nil || err2 != nil || math.IsNaN(wv) || math.IsInf(wv, 0) || math.IsNaN(gv) || math.IsInf(gv, 0) {
			return false
		}
		d := math.Abs(gv - wv)
		if !(d <= f.Eps || d <= f.Eps*math.Abs(wv)) {
			return false
		}
	}
	return true
}
func (f Float) String() string { return "float:" + strconv.FormatFloat(f.Eps, 'g', -1, 64) }
