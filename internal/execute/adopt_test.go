package execute

import (
	"testing"

	"github.com/soulbox-dev/soulbox/internal/lang"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

func TestKernelTag(t *testing.T) {
	for _, tc := range []struct {
		tag  string
		want kernelTag
		ok   bool
	}{
		{"soulbox-context-0123456789abcdef-1", kernelTag{id: "0123456789abcdef", gen: 1}, true},
		{"soulbox-context-0123456789abcdef-42-default", kernelTag{id: "0123456789abcdef", gen: 42, def: true}, true},
		{"soulbox-context-0123456789abcdef-0", kernelTag{}, false},
		{"soulbox-context-0123456789abcdef-01", kernelTag{}, false},
		{"soulbox-context-0123456789abcdef--1", kernelTag{}, false},
		{"soulbox-context-0123456789abcdef-99999999999", kernelTag{}, false},
		{"soulbox-context-0123456789ABCDEF-1", kernelTag{}, false},
		{"soulbox-context-../../etc-1", kernelTag{}, false},
		{"soulbox-context-0123456789abcdef", kernelTag{}, false},
		{"soulbox-context-0123456789abcdef-1-other", kernelTag{}, false},
		{"my-context-0123456789abcdef-1", kernelTag{}, false},
		{"", kernelTag{}, false},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			got, ok := parseKernelTag(tc.tag)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseKernelTag(%q) = %+v, %v; want %+v, %v", tc.tag, got, ok, tc.want, tc.ok)
			}
			if ok && got.String() != tc.tag {
				t.Errorf("String() = %q, want %q", got.String(), tc.tag)
			}
		})
	}
}

// TestRecognise checks that only processes started exactly as the daemon
// starts kernels are taken for kernels.
func TestRecognise(t *testing.T) {
	py, _ := lang.Lookup("python")
	tag := "soulbox-context-0123456789abcdef-3-default"
	cwd := "/home/user"
	kernel := func() *pb.ProcessInfo {
		return &pb.ProcessInfo{Pid: 7, Tag: &tag, Config: &pb.ProcessConfig{
			Cmd: "python3", Args: []string{"-c", kernelPy}, Envs: envMap(py.RunEnv(), nil), Cwd: &cwd}}
	}
	f, ok := recognise(kernel())
	if !ok || f.language != "python" || f.pid != 7 || f.cwd != cwd || f.tag.gen != 3 || !f.tag.def {
		t.Fatalf("recognise(a kernel) = %+v, %v", f, ok)
	}
	for name, change := range map[string]func(p *pb.ProcessInfo){
		"another program":  func(p *pb.ProcessInfo) { p.Config.Args = []string{"-c", "print(1)"} },
		"another command":  func(p *pb.ProcessInfo) { p.Config.Cmd = "/home/user/python3" },
		"a changed env":    func(p *pb.ProcessInfo) { p.Config.Envs["PATH"] = "/home/user/bin" },
		"an extra env":     func(p *pb.ProcessInfo) { p.Config.Envs["LD_PRELOAD"] = "/tmp/x.so" },
		"no cwd":           func(p *pb.ProcessInfo) { p.Config.Cwd = nil },
		"a relative cwd":   func(p *pb.ProcessInfo) { rel := "tmp"; p.Config.Cwd = &rel },
		"no tag":           func(p *pb.ProcessInfo) { p.Tag = nil },
		"another tag":      func(p *pb.ProcessInfo) { other := "soulbox-context-x-1"; p.Tag = &other },
		"js program as py": func(p *pb.ProcessInfo) { p.Config.Args = []string{"-c", kernelJS} },
	} {
		p := kernel()
		change(p)
		if f, ok := recognise(p); ok {
			t.Errorf("%s: recognised as %+v", name, f)
		}
	}
}
