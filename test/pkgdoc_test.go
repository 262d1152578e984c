package test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageDocs requires a package comment in every package, so each
// package says what it is for.
func TestPackageDocs(t *testing.T) {
	for _, root := range []string{"../cmd", "../internal", "../test"} {
		filepath.WalkDir(root, func(dir string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() || strings.Contains(dir, "testdata") {
				return err
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
			documented, sources := false, 0
			for _, f := range files {
				if strings.HasSuffix(f, "_test.go") {
					continue
				}
				sources++
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.PackageClauseOnly|parser.ParseComments)
				if err != nil {
					t.Errorf("%s: %v", f, err)
					continue
				}
				documented = documented || af.Doc != nil
			}
			if sources > 0 && !documented {
				t.Errorf("package in %s has no package comment", dir)
			}
			return nil
		})
	}
}
