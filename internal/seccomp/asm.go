//go:build linux

package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// bpfMaxInsns is BPF_MAXINSNS, the kernel's limit on a classic BPF program.
const bpfMaxInsns = 4096

// label names a position in a program under construction.
type label int

type insnKind uint8

const (
	plain insnKind = iota // loads, ALU, returns: no jump targets
	jump                  // BPF_JA to target
	cond                  // conditional jump to jt or jf
)

type insn struct {
	kind       insnKind
	code       uint16
	k          uint32
	jt, jf     label // cond
	target     label // jump
	trampoline [2]bool
}

// assembler builds a forward-only classic BPF program with symbolic jump
// targets. Conditional jumps have 8-bit offsets; assemble reaches farther
// targets through BPF_JA trampolines (32-bit offsets) placed right after
// the jump.
type assembler struct {
	insns  []insn
	labels []int // label -> index in insns, -1 while unbound
}

func (a *assembler) newLabel() label {
	a.labels = append(a.labels, -1)
	return label(len(a.labels) - 1)
}

// bind makes l refer to the next instruction emitted.
func (a *assembler) bind(l label) {
	if a.labels[l] != -1 {
		panic(fmt.Sprintf("seccomp: label %d bound twice", l))
	}
	a.labels[l] = len(a.insns)
}

func (a *assembler) loadWord(off uint32) {
	a.insns = append(a.insns, insn{code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, k: off})
}

func (a *assembler) and(k uint32) {
	a.insns = append(a.insns, insn{code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, k: k})
}

func (a *assembler) ret(k uint32) {
	a.insns = append(a.insns, insn{code: unix.BPF_RET | unix.BPF_K, k: k})
}

func (a *assembler) jumpTo(l label) {
	a.insns = append(a.insns, insn{kind: jump, code: unix.BPF_JMP | unix.BPF_JA, target: l})
}

// jumpIf emits "if A <op> k goto jt else goto jf" for op one of BPF_JEQ,
// BPF_JGE, BPF_JGT or BPF_JSET.
func (a *assembler) jumpIf(op uint16, k uint32, jt, jf label) {
	a.insns = append(a.insns, insn{kind: cond, code: unix.BPF_JMP | op | unix.BPF_K, k: k, jt: jt, jf: jf})
}

// assemble resolves labels, inserting trampolines for conditional jumps
// whose targets are more than 255 instructions ahead.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	for l, at := range a.labels {
		if at < 0 || at >= len(a.insns) {
			return nil, fmt.Errorf("seccomp: internal error: label %d bound to %d of %d instructions", l, at, len(a.insns))
		}
	}
	pos := make([]int, len(a.insns)+1)
	for {
		n := 0
		for i, in := range a.insns {
			pos[i] = n
			n++
			for _, t := range in.trampoline {
				if t {
					n++
				}
			}
		}
		pos[len(a.insns)] = n
		changed := false
		for i := range a.insns {
			in := &a.insns[i]
			if in.kind != cond {
				continue
			}
			for j, target := range [2]label{in.jt, in.jf} {
				if !in.trampoline[j] && pos[a.labels[target]]-(pos[i]+1) > 0xff {
					in.trampoline[j] = true
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}
	total := pos[len(a.insns)]
	if total > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: program has %d instructions, the kernel allows %d", total, bpfMaxInsns)
	}
	// offset is the distance from the instruction at from to target,
	// measured from the instruction following from.
	offset := func(from int, target label) (int, error) {
		d := pos[a.labels[target]] - (from + 1)
		if d < 0 {
			return 0, fmt.Errorf("seccomp: internal error: backward jump at %d", from)
		}
		return d, nil
	}
	prog := make([]unix.SockFilter, 0, total)
	for i, in := range a.insns {
		switch in.kind {
		case plain:
			prog = append(prog, unix.SockFilter{Code: in.code, K: in.k})
		case jump:
			d, err := offset(pos[i], in.target)
			if err != nil {
				return nil, err
			}
			prog = append(prog, unix.SockFilter{Code: in.code, K: uint32(d)})
		case cond:
			targets := [2]label{in.jt, in.jf}
			var offs [2]uint8
			next := 0 // trampolines follow the jump in order jt, jf
			for j, target := range targets {
				if in.trampoline[j] {
					offs[j] = uint8(next)
					next++
					continue
				}
				d, err := offset(pos[i], target)
				if err != nil {
					return nil, err
				}
				offs[j] = uint8(d)
			}
			prog = append(prog, unix.SockFilter{Code: in.code, Jt: offs[0], Jf: offs[1], K: in.k})
			for j, target := range targets {
				if !in.trampoline[j] {
					continue
				}
				d, err := offset(len(prog), target)
				if err != nil {
					return nil, err
				}
				prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA, K: uint32(d)})
			}
		}
	}
	return prog, nil
}
