package judge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/soulbox-dev/soulbox/internal/limits"
)

// maxCaseFile caps each file read from a tests directory.
const maxCaseFile = 256 << 20

// LoadCases reads DIR/NAME.in and DIR/NAME.out pairs, in natural order of
// NAME (2 before 10). An optional DIR/NAME.limits JSON object overrides the
// submission's limits for that case, with the CLI's flag names and
// syntax: {"timeout": "2s", "memory": "64M", "cpu-time": "1s", "cpus":
// "0.5", "pids": "16", "output-limit": "1M"}. An .in without .out (or the
// reverse) is an error. Only regular files are read, without following
// symbolic links.
func LoadCases(dir string, base limits.Limits) ([]Case, error) {
	return loadCases(dir, base, false)
}

// LoadInteractiveCases is LoadCases for interactive problems, where
// NAME.out (the interactor's answer.txt) is optional: absent, it is empty.
func LoadInteractiveCases(dir string, base limits.Limits) ([]Case, error) {
	return loadCases(dir, base, true)
}

func loadCases(dir string, base limits.Limits, optionalOut bool) ([]Case, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".in"); ok && n != "" {
			names[n] = true
		}
		if n, ok := strings.CutSuffix(e.Name(), ".out"); ok && n != "" {
			names[n] = true
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no NAME.in / NAME.out pairs", dir)
	}
	var sorted []string
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Slice(sorted, func(i, j int) bool { return naturalLess(sorted[i], sorted[j]) })
	var cases []Case
	for _, n := range sorted {
		in, err := readRegular(filepath.Join(dir, n+".in"))
		if err != nil {
			return nil, fmt.Errorf("case %s: %w", n, err)
		}
		out, err := readRegular(filepath.Join(dir, n+".out"))
		if err != nil && (!optionalOut || !errors.Is(err, os.ErrNotExist)) {
			return nil, fmt.Errorf("case %s: %w", n, err)
		}
		c := Case{Name: n, Input: in, Output: out}
		lb, err := readRegular(filepath.Join(dir, n+".limits"))
		switch {
		case err == nil:
			l, err := ParseLimits(lb, base)
			if err != nil {
				return nil, fmt.Errorf("case %s: %s.limits: %w", n, n, err)
			}
			c.Limits = &l
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("case %s: %w", n, err)
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// ParseLimits applies a JSON object of limit overrides to base.
func ParseLimits(b []byte, base limits.Limits) (limits.Limits, error) {
	var m map[string]string
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&m); err != nil {
		return base, fmt.Errorf("want a JSON object of strings: %w", err)
	}
	l := base
	for k, v := range m {
		if err := l.Set(k, v); err != nil {
			return base, fmt.Errorf("%s: %w", k, err)
		}
	}
	return l, nil
}

func readRegular(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscallNoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", filepath.Base(p))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCaseFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCaseFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", filepath.Base(p), maxCaseFile)
	}
	return b, nil
}

// naturalLess orders names with digit runs compared as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}
