package cli

import (
	"slices"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/soulbox-dev/soulbox/internal/limits"
)

func TestAdminMaximums(t *testing.T) {
	m, err := adminMaximums("4G", "8G", "1", "1000")
	if err != nil {
		t.Fatal(err)
	}
	if m.MemoryBytes != 4<<30 || m.DiskBytes != 8<<30 || m.CPUs != 1 || m.Pids != 1000 {
		t.Fatalf("maximums %+v", m)
	}
	if m.OpenFiles != limits.Maximums().OpenFiles {
		t.Fatalf("other maximums changed: %+v", m)
	}
	for _, bad := range [][4]string{
		{"lots", "8G", "1", "1000"},    // unparsable
		{"0", "8G", "1", "1000"},       // zero
		{"128T", "8G", "1", "1000"},    // above the built-in maximum
		{"4G", "8G", "-1", "1000"},     // negative
		{"4G", "8G", "1", "10"},        // below the default pids
		{"256M", "8G", "1", "1000"},    // below the default memory
		{"4G", "8G", "99999", "1000"},  // more cores than the host
		{"4G", "8G", "1", "999999999"}, // above the built-in pids
	} {
		if _, err := adminMaximums(bad[0], bad[1], bad[2], bad[3]); err == nil {
			t.Errorf("adminMaximums(%q) accepted", bad)
		}
	}
}

// TestLimitFlagsAreLimitNames: the run fast path (internal/quickrun) takes
// exactly the limit flags limits.Names lists; the full command line must
// register the same ones.
func TestLimitFlagsAreLimitNames(t *testing.T) {
	c := &cobra.Command{}
	var lf limitFlags
	lf.register(c)
	var got []string
	c.Flags().VisitAll(func(f *pflag.Flag) { got = append(got, f.Name) })
	want := slices.Clone(limits.Names)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("limit flags %v, limits.Names %v", got, want)
	}
}
