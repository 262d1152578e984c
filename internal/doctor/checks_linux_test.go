package doctor

import (
	"slices"
	"testing"
)

func TestParseKernelVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    kernelVersion
		wantErr bool
	}{
		{"6.18.44-fc-v669", kernelVersion{6, 18}, false},
		{"5.7.0", kernelVersion{5, 7}, false},
		{"6.1.0-18-amd64", kernelVersion{6, 1}, false},
		{"5.15", kernelVersion{5, 15}, false},
		{"4.19-rc1", kernelVersion{4, 19}, false},
		{"garbage", kernelVersion{}, true},
		{"x.y", kernelVersion{}, true},
	}
	for _, tt := range tests {
		got, err := parseKernelVersion(tt.in)
		if gotErr := err != nil; gotErr != tt.wantErr || got != tt.want {
			t.Errorf("parseKernelVersion(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestKernelVersionAtLeast(t *testing.T) {
	tests := []struct {
		v            kernelVersion
		major, minor int
		want         bool
	}{
		{kernelVersion{5, 7}, 5, 7, true},
		{kernelVersion{5, 6}, 5, 7, false},
		{kernelVersion{6, 0}, 5, 7, true},
		{kernelVersion{4, 20}, 5, 2, false},
	}
	for _, tt := range tests {
		if got := tt.v.atLeast(tt.major, tt.minor); got != tt.want {
			t.Errorf("%v.atLeast(%d, %d) = %v, want %v", tt.v, tt.major, tt.minor, got, tt.want)
		}
	}
}

func TestHasFilesystem(t *testing.T) {
	procFS := []byte("nodev\tsysfs\nnodev\tproc\n\text4\nnodev\toverlay\n")
	tests := []struct {
		fs   string
		want bool
	}{
		{"overlay", true},
		{"ext4", true},
		{"xfs", false},
		{"over", false},
	}
	for _, tt := range tests {
		if got := hasFilesystem(procFS, tt.fs); got != tt.want {
			t.Errorf("hasFilesystem(%q) = %v, want %v", tt.fs, got, tt.want)
		}
	}
}

func TestMissingControllers(t *testing.T) {
	tests := []struct {
		list string
		want []string
	}{
		{"cpu io memory pids\n", nil},
		{"io memory", []string{"cpu", "pids"}},
		{"", []string{"cpu", "memory", "pids"}},
	}
	for _, tt := range tests {
		if got := missingControllers(tt.list, "cpu", "memory", "pids"); !slices.Equal(got, tt.want) {
			t.Errorf("missingControllers(%q) = %v, want %v", tt.list, got, tt.want)
		}
	}
}
