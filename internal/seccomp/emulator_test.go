//go:build linux

package seccomp

import (
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [maxArgs]uint64
}

// bytes lays d out as the kernel does on a little-endian machine.
func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// checkProgram applies the rules the kernel enforces when a seccomp filter
// is loaded (bpf_check_classic and seccomp_check_filter), restricted to the
// instructions the compiler is supposed to emit.
func checkProgram(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > bpfMaxInsns {
		return fmt.Errorf("length %d out of range", len(prog))
	}
	for pc, in := range prog {
		remaining := uint32(len(prog) - pc - 1)
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K >= 64 {
				return fmt.Errorf("pc %d: load at offset %d outside seccomp_data or unaligned", pc, in.K)
			}
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, unix.BPF_RET | unix.BPF_K:
		case unix.BPF_JMP | unix.BPF_JA:
			if in.K >= remaining {
				return fmt.Errorf("pc %d: ja %d past the end", pc, in.K)
			}
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if uint32(in.Jt) >= remaining || uint32(in.Jf) >= remaining {
				return fmt.Errorf("pc %d: jump (%d, %d) past the end", pc, in.Jt, in.Jf)
			}
		default:
			return fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
		}
	}
	if last := prog[len(prog)-1]; last.Code != unix.BPF_RET|unix.BPF_K {
		return fmt.Errorf("program does not end with a return")
	}
	return nil
}

// emulate runs a checked program on d with kernel semantics and reports
// the returned SECCOMP_RET_* value and the number of instructions executed.
func emulate(prog []unix.SockFilter, d seccompData) (ret uint32, steps int, err error) {
	data := d.bytes()
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		steps++
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K%4 != 0 || in.K >= 64 {
				return 0, steps, fmt.Errorf("pc %d: bad load offset %d", pc, in.K)
			}
			a = binary.LittleEndian.Uint32(data[in.K:])
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_RET | unix.BPF_K:
			return in.K, steps, nil
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		default:
			var taken bool
			switch in.Code {
			case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
				taken = a == in.K
			case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
				taken = a >= in.K
			case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
				taken = a > in.K
			case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
				taken = a&in.K != 0
			default:
				return 0, steps, fmt.Errorf("pc %d: unexpected opcode %#x", pc, in.Code)
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		}
	}
	return 0, steps, fmt.Errorf("ran off the end of the program")
}

// netVM wraps golang.org/x/net/bpf's interpreter, an implementation
// independent of emulate, as a cross-check.
type netVM struct{ vm *bpf.VM }

func newNetVM(prog []unix.SockFilter) (*netVM, error) {
	insns := make([]bpf.Instruction, len(prog))
	for i, in := range prog {
		insns[i] = bpf.RawInstruction{Op: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}.Disassemble()
		if _, raw := insns[i].(bpf.RawInstruction); raw {
			return nil, fmt.Errorf("pc %d: x/net/bpf cannot decode %+v", i, in)
		}
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		return nil, err
	}
	return &netVM{vm: vm}, nil
}

func (v *netVM) run(d seccompData) (uint32, error) {
	// x/net/bpf loads words big-endian (network order); re-encode each
	// native word so that the VM sees the value the kernel would.
	native := d.bytes()
	be := make([]byte, len(native))
	for off := 0; off < len(native); off += 4 {
		binary.BigEndian.PutUint32(be[off:], binary.LittleEndian.Uint32(native[off:]))
	}
	n, err := v.vm.Run(be)
	return uint32(n), err
}

// retOf is the SECCOMP_RET_* value an action must compile to, written out
// independently of Action.ret.
func retOf(a Action) uint32 {
	switch a {
	case Allow:
		return 0x7fff0000
	case KillProcess:
		return 0x80000000
	case Log:
		return 0x7ffc0000
	}
	if a.kind == actErrno {
		return 0x00050000 | uint32(a.errno)
	}
	panic(fmt.Sprintf("retOf: unexpected action %v", a))
}

// reference evaluates p on d straight from the policy data, the way the
// Rule and Policy documentation describe it, without the compiler's
// resolution step.
func reference(p Policy, a arch, d seccompData) uint32 {
	if d.arch != a.audit || d.nr&a.x32Bit != 0 {
		return retOf(KillProcess)
	}
	name := ""
	for _, s := range a.syscalls {
		if s.nr == d.nr {
			name = s.name
		}
	}
	for _, r := range p.Rules {
		if name == "" || !slices.Contains(r.Names, name) {
			continue
		}
		holds := true
		for _, c := range r.Conds {
			v, mask := d.args[c.Index], ^uint64(0)
			if c.Op == MaskedEq || c.Op == MaskedNe {
				mask = c.Mask
			}
			if c.Low32 {
				v &= 0xffffffff
				mask &= 0xffffffff
			}
			eq := v&mask == c.Value
			if (c.Op == Eq || c.Op == MaskedEq) != eq {
				holds = false
			}
		}
		if holds {
			return retOf(r.Action)
		}
	}
	return retOf(p.Default)
}

func retString(r uint32) string {
	switch r & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW:
		return "ALLOW"
	case unix.SECCOMP_RET_KILL_PROCESS:
		return "KILL_PROCESS"
	case unix.SECCOMP_RET_LOG:
		return "LOG"
	case unix.SECCOMP_RET_ERRNO:
		return Errno(unix.Errno(r & unix.SECCOMP_RET_DATA)).String()
	}
	return fmt.Sprintf("%#x", r)
}
