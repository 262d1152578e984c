package cgroup

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseMountinfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{
			name: "hybrid with separate and co-mounted controllers",
			in: `24 30 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs ro,mode=755
25 24 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:5 - cgroup2 cgroup2 rw,nsdelegate
26 24 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:6 - cgroup cgroup rw,cpu,cpuacct
27 24 0:25 / /sys/fs/cgroup/memory rw,nosuid shared:7 - cgroup cgroup rw,memory
28 24 0:26 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
29 24 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
30 24 0:28 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
31 24 0:27 / /mnt/pids\040again rw - cgroup cgroup rw,pids
`,
			want: map[string]string{
				"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
				"memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids", "freezer": "/sys/fs/cgroup/freezer",
			},
		},
		{
			name: "escaped mount point",
			in:   "40 1 0:30 / /mnt/my\\040cg rw - cgroup cgroup rw,memory\n",
			want: map[string]string{"memory": "/mnt/my cg"},
		},
		{
			name: "pure v2",
			in:   "25 1 0:23 / /sys/fs/cgroup rw shared:5 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
			want: map[string]string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountinfo(strings.NewReader(tt.in))
			if err != nil {
				t.Fatalf("parseMountinfo: %v", err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("parseMountinfo =\n %v, want\n %v", got, tt.want)
			}
		})
	}
	if _, err := parseMountinfo(strings.NewReader("garbage line\n")); err == nil {
		t.Error("parseMountinfo(garbage) succeeded, want an error")
	}
}

func TestNewV1Missing(t *testing.T) {
	_, err := newV1(osFS{}, map[string]string{"memory": "/m", "cpu": "/c", "cpuacct": "/c"})
	if err == nil || !strings.Contains(err.Error(), "freezer, pids") {
		t.Errorf("newV1 = %v, want an error naming freezer, pids", err)
	}
	h, err := newV1(osFS{}, map[string]string{"memory": "/m", "cpu": "/c", "cpuacct": "/c", "pids": "/p", "freezer": "/f", "blkio": "/b"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Controllers(), []string{"blkio", "cpu", "cpuacct", "freezer", "memory", "pids"}; !slices.Equal(got, want) {
		t.Errorf("Controllers() = %v, want %v", got, want)
	}
	// cpu and cpuacct share a mount: one directory for both.
	if got, want := h.newCgroup("x").dirs, []string{"/f/soulbox/x", "/m/soulbox/x", "/c/soulbox/x", "/p/soulbox/x"}; !slices.Equal(got, want) {
		t.Errorf("dirs = %v, want %v", got, want)
	}
}

func TestParseKeyed(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]int64
		wantErr bool
	}{
		{"usage_usec 10\nuser_usec 7\n", map[string]int64{"usage_usec": 10, "user_usec": 7}, false},
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", map[string]int64{"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}, false},
		{"max 5\n\n", map[string]int64{"max": 5}, false},
		{"populated max\n", map[string]int64{"populated": -1}, false},
		{"novalue\n", nil, true},
		{"key notanumber\n", nil, true},
	}
	for _, tt := range tests {
		got, err := parseKeyed([]byte(tt.in))
		if gotErr := err != nil; gotErr != tt.wantErr {
			t.Errorf("parseKeyed(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !maps.Equal(got, tt.want) {
			t.Errorf("parseKeyed(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseSingle(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"67108864\n", 67108864, false},
		{"max\n", -1, false},
		{"-1\n", -1, false},
		{"9223372036854771712\n", 9223372036854771712, false},
		{"", 0, true},
		{"12 34", 0, true},
	}
	for _, tt := range tests {
		got, err := parseSingle([]byte(tt.in))
		if gotErr := err != nil; gotErr != tt.wantErr || got != tt.want {
			t.Errorf("parseSingle(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParsePids(t *testing.T) {
	got, err := parsePids([]byte("12\n7\n"))
	if err != nil || !slices.Equal(got, []int{12, 7}) {
		t.Errorf("parsePids = %v, %v; want [12 7]", got, err)
	}
	if _, err := parsePids([]byte("12\nx\n")); err == nil {
		t.Error("parsePids(bad) succeeded, want an error")
	}
}

func TestActiveSwaps(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"Filename\tType\tSize\tUsed\tPriority\n", 0},
		{"", 0},
		{"Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 100 0 -2\n/swapfile file 10 0 -3\n", 2},
	}
	for _, tt := range tests {
		if got := activeSwaps([]byte(tt.in)); got != tt.want {
			t.Errorf("activeSwaps(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestVersionString(t *testing.T) {
	for v, want := range map[Version]string{V1: "v1", V2: "v2", 7: "Version(7)"} {
		if got := v.String(); got != want {
			t.Errorf("Version(%d).String() = %q, want %q", int(v), got, want)
		}
	}
}
