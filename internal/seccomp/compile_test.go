//go:build linux

package seccomp

import (
	"errors"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// requireNative returns the native arch or skips on architectures without
// a syscall table (Compile's refusal there is tested by TestCompileUnsupportedArch).
func requireNative(t testing.TB) arch {
	t.Helper()
	a, err := nativeArch()
	if err != nil {
		t.Skipf("no syscall table for %s: %v", runtime.GOARCH, err)
	}
	return a
}

// compiled is a program that passed the kernel-style checks, with both
// interpreters ready.
type compiled struct {
	prog []unix.SockFilter
	vm   *netVM
}

func mustCompile(t testing.TB, p Policy, a arch) compiled {
	t.Helper()
	prog, err := p.compileFor(a)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if err := checkProgram(prog); err != nil {
		t.Fatalf("compiled program fails the kernel's checks: %v", err)
	}
	vm, err := newNetVM(prog)
	if err != nil {
		t.Fatalf("x/net/bpf rejects the program: %v", err)
	}
	return compiled{prog: prog, vm: vm}
}

// eval runs d through both interpreters and fails if they disagree.
func (c compiled) eval(t testing.TB, d seccompData) uint32 {
	t.Helper()
	got, _, err := emulate(c.prog, d)
	if err != nil {
		t.Fatalf("emulate %+v: %v", d, err)
	}
	got2, err := c.vm.run(d)
	if err != nil {
		t.Fatalf("x/net/bpf run %+v: %v", d, err)
	}
	if got != got2 {
		t.Fatalf("interpreters disagree on %+v: emulate %s, x/net/bpf %s", d, retString(got), retString(got2))
	}
	return got
}

func nrOf(t testing.TB, a arch, name string) uint32 {
	t.Helper()
	for _, s := range a.syscalls {
		if s.name == name {
			return s.nr
		}
	}
	t.Fatalf("%q is not in the %s table", name, a.name)
	return 0
}

func TestDefaultPolicyDecisions(t *testing.T) {
	a := requireNative(t)
	c := mustCompile(t, Default(), a)
	var (
		allow  = retOf(Allow)
		kill   = retOf(KillProcess)
		eperm  = retOf(Errno(unix.EPERM))
		enosys = retOf(Errno(unix.ENOSYS))
		einval = retOf(Errno(unix.EINVAL))
	)
	call := func(name string, args ...uint64) seccompData {
		d := seccompData{nr: nrOf(t, a, name), arch: unix.AUDIT_ARCH_X86_64}
		copy(d.args[:], args)
		return d
	}
	raw := func(arch, nr uint32) seccompData { return seccompData{nr: nr, arch: arch} }
	const (
		threadFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD |
			unix.CLONE_SYSVSEM | unix.CLONE_SETTLS | unix.CLONE_PARENT_SETTID | unix.CLONE_CHILD_CLEARTID
		forkFlags  = unix.CLONE_CHILD_SETTID | unix.CLONE_CHILD_CLEARTID | uint64(unix.SIGCHLD)
		vforkFlags = unix.CLONE_VFORK | unix.CLONE_VM | unix.CLONE_PIDFD | uint64(unix.SIGCHLD)
		high       = 1 << 32
	)
	tests := []struct {
		name string
		data seccompData
		want uint32
	}{
		{"read", call("read"), allow},
		{"write", call("write"), allow},
		{"mount", call("mount"), eperm},
		{"unshare", call("unshare", unix.CLONE_NEWUSER), eperm},
		{"setns", call("setns"), eperm},
		{"ptrace", call("ptrace"), eperm},
		{"bpf", call("bpf"), eperm},
		{"io_uring_setup", call("io_uring_setup"), eperm},
		{"mbind allowed for JVMs", call("mbind"), allow},
		{"unknown nr 1000", raw(unix.AUDIT_ARCH_X86_64, 1000), enosys},
		{"unknown nr 0x80000000", raw(unix.AUDIT_ARCH_X86_64, 0x80000000), enosys},
		{"nr in a table gap (400)", raw(unix.AUDIT_ARCH_X86_64, 400), enosys},
		{"table syscall left to the default", call("process_mrelease"), enosys},
		{"arch i386 exit", raw(unix.AUDIT_ARCH_I386, 1), kill},
		{"arch i386 with an x86_64 read nr", raw(unix.AUDIT_ARCH_I386, 0), kill},
		{"arch zero", raw(0, 0), kill},
		{"x32 read (nr 0)", raw(unix.AUDIT_ARCH_X86_64, 0x40000000), kill},
		{"x32 getpid", raw(unix.AUDIT_ARCH_X86_64, 0x40000000|39), kill},
		{"nr -1", raw(unix.AUDIT_ARCH_X86_64, 0xffffffff), kill},
		{"clone3", call("clone3"), enosys},
		{"clone thread", call("clone", threadFlags), allow},
		{"clone fork", call("clone", forkFlags), allow},
		{"clone vfork with pidfd", call("clone", vforkFlags), allow},
		{"clone CLONE_NEWUSER", call("clone", unix.CLONE_NEWUSER|uint64(unix.SIGCHLD)), eperm},
		{"clone CLONE_NEWNS", call("clone", unix.CLONE_NEWNS), eperm},
		{"clone CLONE_NEWUTS", call("clone", unix.CLONE_NEWUTS), eperm},
		{"clone CLONE_NEWIPC", call("clone", unix.CLONE_NEWIPC), eperm},
		{"clone CLONE_NEWPID", call("clone", unix.CLONE_NEWPID), eperm},
		{"clone CLONE_NEWNET", call("clone", unix.CLONE_NEWNET), eperm},
		{"clone CLONE_NEWCGROUP", call("clone", unix.CLONE_NEWCGROUP), eperm},
		{"clone thread with CLONE_NEWUSER", call("clone", threadFlags|unix.CLONE_NEWUSER), eperm},
		{"clone CLONE_NEWUSER with garbage high bits", call("clone", 0xdead<<32|unix.CLONE_NEWUSER), eperm},
		{"clone namespace bits only in the ignored high half", call("clone", unix.CLONE_NEWUSER<<32|uint64(unix.SIGCHLD)), allow},
		{"socket AF_UNIX", call("socket", unix.AF_UNIX, unix.SOCK_STREAM), allow},
		{"socket AF_INET", call("socket", unix.AF_INET, unix.SOCK_STREAM), allow},
		{"socket AF_INET6", call("socket", unix.AF_INET6, unix.SOCK_DGRAM), allow},
		{"socket AF_INET with high garbage", call("socket", high|unix.AF_INET), allow},
		{"socket AF_UNSPEC", call("socket", unix.AF_UNSPEC), eperm},
		{"socket AF_VSOCK", call("socket", unix.AF_VSOCK, unix.SOCK_STREAM), eperm},
		{"socket AF_VSOCK with high garbage", call("socket", high|unix.AF_VSOCK), eperm},
		{"socket AF_PACKET", call("socket", unix.AF_PACKET, unix.SOCK_RAW), eperm},
		{"socket AF_ALG", call("socket", unix.AF_ALG, unix.SOCK_SEQPACKET), eperm},
		{"socket AF_BLUETOOTH", call("socket", unix.AF_BLUETOOTH), eperm},
		{"socket AF_NETLINK route", call("socket", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE), allow},
		{"socket AF_NETLINK route, high garbage", call("socket", unix.AF_NETLINK, unix.SOCK_RAW, high|unix.NETLINK_ROUTE), allow},
		{"socket AF_NETLINK audit", call("socket", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_AUDIT), einval},
		{"socket AF_NETLINK uevent", call("socket", unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_KOBJECT_UEVENT), eperm},
		{"socket AF_NETLINK sock_diag", call("socket", unix.AF_NETLINK, unix.SOCK_DGRAM, unix.NETLINK_SOCK_DIAG), eperm},
		{"socket AF_NETLINK xfrm", call("socket", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_XFRM), eperm},
		{"socketpair AF_UNIX", call("socketpair", unix.AF_UNIX, unix.SOCK_STREAM), allow},
		{"socketpair AF_VSOCK", call("socketpair", unix.AF_VSOCK), eperm},
		{"ioctl TIOCSTI", call("ioctl", 0, unix.TIOCSTI), eperm},
		{"ioctl TIOCSTI with high bits", call("ioctl", 0, high|unix.TIOCSTI), eperm},
		{"ioctl TIOCLINUX", call("ioctl", 0, unix.TIOCLINUX), eperm},
		{"ioctl TCGETS", call("ioctl", 0, unix.TCGETS), allow},
		{"ioctl TIOCSTI only in the high half", call("ioctl", 0, unix.TIOCSTI<<32), allow},
		{"ioctl FIONREAD (TIOCINQ)", call("ioctl", 0, unix.TIOCINQ), allow},
		{"personality query", call("personality", 0xffffffff), allow},
		{"personality query as -1", call("personality", ^uint64(0)), allow},
		{"personality PER_LINUX", call("personality", 0), allow},
		{"personality PER_LINUX32", call("personality", 0x8), allow},
		{"personality UNAME26", call("personality", 0x20000), allow},
		{"personality PER_LINUX32|UNAME26", call("personality", 0x20008), allow},
		{"personality ADDR_NO_RANDOMIZE", call("personality", 0x0040000), eperm},
		{"personality PER_BSD", call("personality", 0x6), eperm},
	}
	p := Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.eval(t, tt.data); got != tt.want {
				t.Errorf("compiled filter: got %s, want %s", retString(got), retString(tt.want))
			}
			if got := reference(p, a, tt.data); got != tt.want {
				t.Errorf("reference evaluation: got %s, want %s", retString(got), retString(tt.want))
			}
		})
	}
}

// TestEveryTableSyscall checks each syscall of the table, with all-zero and
// all-ones arguments, against the reference evaluation of the policy data.
func TestEveryTableSyscall(t *testing.T) {
	a := requireNative(t)
	p := Default()
	c := mustCompile(t, p, a)
	for _, s := range a.syscalls {
		for _, arg := range []uint64{0, ^uint64(0)} {
			d := seccompData{nr: s.nr, arch: a.audit}
			for i := range d.args {
				d.args[i] = arg
			}
			got, want := c.eval(t, d), reference(p, a, d)
			if got != want {
				t.Errorf("%s (nr %d, args %#x): got %s, want %s", s.name, s.nr, arg, retString(got), retString(want))
			}
		}
	}
}

// TestConditionalSyscalls drives every argument of every conditional
// syscall of the default policy through values near each condition's edge.
func TestConditionalSyscalls(t *testing.T) {
	a := requireNative(t)
	p := Default()
	c := mustCompile(t, p, a)
	var values []uint64
	conditional := map[string]bool{}
	for _, r := range p.Rules {
		for _, cond := range r.Conds {
			for _, n := range r.Names {
				conditional[n] = true
			}
			v := cond.Value
			values = append(values, v, v+1, v-1, v|1<<32, v|0xffffffff00000000, v^cond.Mask, cond.Mask, ^cond.Mask)
		}
	}
	values = append(values, 0, ^uint64(0))
	slices.Sort(values)
	values = slices.Compact(values)
	if len(conditional) < 5 {
		t.Fatalf("found %d conditional syscalls, want at least 5 (clone, socket, socketpair, ioctl, personality)", len(conditional))
	}
	n := 0
	for name := range conditional {
		nr := nrOf(t, a, name)
		for idx := range 3 {
			for _, v := range values {
				d := seccompData{nr: nr, arch: a.audit}
				d.args[idx] = v
				// Keep a plausible value in the other leading arguments
				// so multi-argument conditions (netlink) get exercised.
				if idx != 0 {
					d.args[0] = unix.AF_NETLINK
				}
				n++
				if got, want := c.eval(t, d), reference(p, a, d); got != want {
					t.Errorf("%s arg%d=%#x: got %s, want %s", name, idx, v, retString(got), retString(want))
				}
			}
		}
	}
	t.Logf("checked %d conditional cases", n)
}

// TestDispatchIsLogarithmic bounds the instructions any syscall runs, which
// a linear chain of comparisons over ~350 syscalls would blow through.
func TestDispatchIsLogarithmic(t *testing.T) {
	a := requireNative(t)
	c := mustCompile(t, Default(), a)
	const maxSteps = 24
	worst, worstNr := 0, uint32(0)
	for nr := uint32(0); nr < 1100; nr++ {
		d := seccompData{nr: nr, arch: a.audit}
		_, steps, err := emulate(c.prog, d)
		if err != nil {
			t.Fatal(err)
		}
		if steps > worst {
			worst, worstNr = steps, nr
		}
	}
	t.Logf("program: %d instructions; worst case %d executed (nr %d)", len(c.prog), worst, worstNr)
	if worst > maxSteps {
		t.Errorf("worst-case path executes %d instructions (nr %d), want at most %d", worst, worstNr, maxSteps)
	}
}

func TestCompileIsDeterministic(t *testing.T) {
	a := requireNative(t)
	first := mustCompile(t, Default(), a).prog
	for range 5 {
		if got := mustCompile(t, Default(), a).prog; !slices.Equal(got, first) {
			t.Fatal("two compilations of the same policy differ")
		}
	}
}

func TestCompileRejects(t *testing.T) {
	a := requireNative(t)
	ok := func(r Rule) Policy { return Policy{Default: Allow, Rules: []Rule{r}} }
	cond := func(c ArgCond) Policy {
		return ok(Rule{Names: []string{"ioctl"}, Action: Allow, Conds: []ArgCond{c}})
	}
	tests := []struct {
		name   string
		policy Policy
		is     error
		want   string
	}{
		{"unknown syscall", ok(Rule{Names: []string{"read", "frobnicate"}, Action: Allow}), ErrUnknownSyscall, `"frobnicate"`},
		{"default unset", Policy{}, nil, "default action: action not set"},
		{"rule action unset", ok(Rule{Names: []string{"read"}}), nil, "rule 0: action: action not set"},
		{"errno zero", ok(Rule{Names: []string{"read"}, Action: Errno(0)}), nil, "errno 0 out of range"},
		{"errno too large", ok(Rule{Names: []string{"read"}, Action: Errno(4096)}), nil, "errno 4096 out of range"},
		{"no names", ok(Rule{Action: Allow}), nil, "no system call names"},
		{"duplicate name", ok(Rule{Names: []string{"read", "read"}, Action: Allow}), nil, `"read" listed twice`},
		{"unreachable rule", Policy{Default: Allow, Rules: []Rule{
			{Names: []string{"read"}, Action: Allow},
			{Names: []string{"write", "read"}, Action: Errno(unix.EPERM)},
		}}, nil, `rule 1: "read" is unreachable: rule 0`},
		{"arg index 6", cond(ArgCond{Index: 6, Op: Eq}), nil, "argument index 6 out of range"},
		{"arg index -1", cond(ArgCond{Index: -1, Op: Eq}), nil, "argument index -1 out of range"},
		{"op unset", cond(ArgCond{Index: 1}), nil, "invalid op 0"},
		{"mask on Eq", cond(ArgCond{Index: 1, Op: Eq, Mask: 0xff}), nil, "use MaskedEq or MaskedNe"},
		{"zero mask", cond(ArgCond{Index: 1, Op: MaskedNe}), nil, "zero mask"},
		{"value outside mask", cond(ArgCond{Index: 1, Op: MaskedEq, Mask: 0xf0, Value: 0x1}), nil, "bits outside mask"},
		{"Low32 value too wide", cond(ArgCond{Index: 1, Op: Eq, Value: 1 << 32, Low32: true}), nil, "wider than 32 bits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := tt.policy.compileFor(a)
			if err == nil {
				t.Fatalf("compile succeeded with %d instructions, want an error containing %q", len(prog), tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if r := tt.policy.renderFor(a); !strings.HasPrefix(r, "error: ") {
				t.Errorf("Render of an invalid policy = %q, want an error line", r)
			}
		})
	}
}

func TestTable(t *testing.T) {
	a := requireNative(t)
	valid := regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	names := map[string]bool{}
	for i, s := range a.syscalls {
		if !valid.MatchString(s.name) || names[s.name] {
			t.Errorf("entry %d: name %q is malformed or duplicated", i, s.name)
		}
		names[s.name] = true
		if i > 0 && s.nr <= a.syscalls[i-1].nr {
			t.Errorf("entry %d (%s): number %d not above %d", i, s.name, s.nr, a.syscalls[i-1].nr)
		}
		if s.nr&a.x32Bit != 0 {
			t.Errorf("%s: number %#x has the x32 bit", s.name, s.nr)
		}
	}
	// Spot checks against the x86_64 ABI, written as literals on purpose.
	for name, want := range map[string]uint32{
		"read": 0, "ioctl": 16, "socket": 41, "clone": 56, "personality": 135, "mount": 165,
		"unshare": 272, "seccomp": 317, "pidfd_send_signal": 424, "clone3": 435, "process_mrelease": 448,
	} {
		if got := nrOf(t, a, name); got != want {
			t.Errorf("%s: got nr %d, want %d", name, got, want)
		}
	}
}

// TestCompileUnsupportedArch checks that Compile fails closed off amd64;
// on amd64 it checks the other half of the contract: Compile returns a
// program for the native arch.
func TestCompileUnsupportedArch(t *testing.T) {
	prog, err := Default().Compile()
	if runtime.GOARCH != "amd64" {
		if !errors.Is(err, ErrUnsupportedArch) || prog != nil {
			t.Fatalf("Compile on %s: got (%d instructions, %v), want ErrUnsupportedArch", runtime.GOARCH, len(prog), err)
		}
		return
	}
	if err != nil || len(prog) == 0 {
		t.Fatalf("Compile on amd64: got (%d instructions, %v), want a program", len(prog), err)
	}
}

func TestEmptyPolicy(t *testing.T) {
	a := requireNative(t)
	for _, def := range []Action{Allow, Errno(unix.EPERM), KillProcess, Log} {
		c := mustCompile(t, Policy{Default: def}, a)
		for _, nr := range []uint32{0, 1, 435, 0x3fffffff, 0x80000000} {
			d := seccompData{nr: nr, arch: a.audit}
			if got, want := c.eval(t, d), retOf(def); got != want {
				t.Errorf("default %v, nr %d: got %s, want %s", def, nr, retString(got), retString(want))
			}
		}
	}
}
