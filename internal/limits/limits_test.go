package limits

import (
	"errors"
	"testing"
	"time"
)

func TestParseBytes(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true}, {"256M", 256 << 20, true}, {"1G", 1 << 30, true}, {"512k", 512 << 10, true},
		{"1.5G", 3 << 29, true}, {"64MiB", 64 << 20, true}, {"2MB", 2 << 20, true}, {" 8m ", 8 << 20, true},
		{"0", 0, false}, {"-5M", 0, false}, {"", 0, false}, {"lots", 0, false}, {"5X", 0, false},
		{"M", 0, false}, {"NaNM", 0, false}, {"1e30G", 0, false}, {"0.1", 0, false}, {"1..2M", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseBytes(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseBytes(%q) error %v does not wrap ErrInvalid", tc.in, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2s", 2 * time.Second, true}, {"500ms", 500 * time.Millisecond, true}, {"1.5", 1500 * time.Millisecond, true},
		{"0", 0, false}, {"-1s", 0, false}, {"soon", 0, false}, {"", 0, false}, {"1e300", 0, false}, {"NaN", 0, false},
	}
	for _, tc := range cases {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseCPUsAndCount(t *testing.T) {
	for _, in := range []string{"0", "-1", "x", "NaN", "Inf", ""} {
		if _, err := ParseCPUs(in); err == nil {
			t.Errorf("ParseCPUs(%q) accepted", in)
		}
	}
	if got, err := ParseCPUs("0.5"); err != nil || got != 0.5 {
		t.Errorf("ParseCPUs(0.5) = %v, %v", got, err)
	}
	for _, in := range []string{"0", "-3", "1.5", "many", ""} {
		if _, err := ParseCount(in); err == nil {
			t.Errorf("ParseCount(%q) accepted", in)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := Defaults().Validate(Maximums()); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	mutations := map[string]func(*Limits){
		"zero memory":      func(l *Limits) { l.MemoryBytes = 0 },
		"huge memory":      func(l *Limits) { l.MemoryBytes = 1 << 50 },
		"tiny memory":      func(l *Limits) { l.MemoryBytes = 1 << 20 },
		"negative cpus":    func(l *Limits) { l.CPUs = -1 },
		"too many cpus":    func(l *Limits) { l.CPUs = 1e6 },
		"zero wall":        func(l *Limits) { l.WallTime = 0 },
		"negative cpu":     func(l *Limits) { l.CPUTime = -time.Second },
		"zero pids":        func(l *Limits) { l.Pids = 0 },
		"zero output":      func(l *Limits) { l.OutputBytes = 0 },
		"huge output":      func(l *Limits) { l.OutputBytes = 1 << 40 },
		"zero disk":        func(l *Limits) { l.DiskBytes = 0 },
		"zero file size":   func(l *Limits) { l.FileBytes = 0 },
		"few open files":   func(l *Limits) { l.OpenFiles = 2 },
		"zero stack":       func(l *Limits) { l.StackBytes = 0 },
		"zero shm":         func(l *Limits) { l.ShmBytes = 0 },
		"unset (all zero)": func(l *Limits) { *l = Limits{} },
	}
	for name, mutate := range mutations {
		l := Defaults()
		mutate(&l)
		if err := l.Validate(Maximums()); err == nil || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v, want an ErrInvalid error", name, err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{512 << 20: "512M", 1 << 30: "1G", 1000: "1000", 3 << 10: "3K"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestSet(t *testing.T) {
	var l Limits
	for name, value := range map[string]string{
		"memory": "1M", "output-limit": "2M", "disk": "3M", "file-size": "4M", "stack": "5M",
		"pids": "6", "open-files": "7", "cpus": "0.5", "cpu-time": "8s", "timeout": "9s",
	} {
		if err := l.Set(name, value); err != nil {
			t.Fatalf("Set(%q, %q): %v", name, value, err)
		}
	}
	want := Limits{MemoryBytes: 1 << 20, OutputBytes: 2 << 20, DiskBytes: 3 << 20, FileBytes: 4 << 20, StackBytes: 5 << 20,
		Pids: 6, OpenFiles: 7, CPUs: 0.5, CPUTime: 8 * time.Second, WallTime: 9 * time.Second}
	if l != want {
		t.Fatalf("Set gave %+v, want %+v", l, want)
	}
	if err := l.Set("swap", "1G"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown limit: %v", err)
	}
	if err := l.Set("memory", "0"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero memory: %v", err)
	}
}
