//go:build linux

package seccomp

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Op is the comparison an [ArgCond] applies to a system call argument.
// The zero Op is invalid.
type Op uint8

const (
	_        Op = iota
	Eq          // arg == Value
	Ne          // arg != Value
	MaskedEq    // arg & Mask == Value
	MaskedNe    // arg & Mask != Value
)

func (o Op) String() string {
	switch o {
	case Eq, MaskedEq:
		return "=="
	case Ne, MaskedNe:
		return "!="
	default:
		return fmt.Sprintf("Op(%d)", uint8(o))
	}
}

// maxArgs is the number of arguments in struct seccomp_data.
const maxArgs = 6

// ArgCond is a condition on one argument of a system call.
//
// Arguments are 64 bits wide. Set Low32 when the kernel declares the
// argument as a 32-bit type (int, unsigned int): the kernel then ignores the
// upper half of the register, so a 64-bit comparison could be dodged by
// setting garbage high bits (for deny rules) or would spuriously reject a
// call (for allow rules).
type ArgCond struct {
	Index int    // argument number, 0 to 5
	Op    Op     // comparison
	Value uint64 // right-hand side; for masked ops it must lie within Mask
	Mask  uint64 // only for MaskedEq and MaskedNe; must be non-zero
	Low32 bool   // compare only the low 32 bits of the argument
}

// mask is the set of argument bits the condition looks at.
func (c ArgCond) mask() uint64 {
	m := c.Mask
	if c.Op == Eq || c.Op == Ne {
		m = math.MaxUint64
	}
	if c.Low32 {
		m &= math.MaxUint32
	}
	return m
}

// negated reports whether the condition holds when the masked argument
// differs from Value.
func (c ArgCond) negated() bool { return c.Op == Ne || c.Op == MaskedNe }

func (c ArgCond) validate() error {
	if c.Index < 0 || c.Index >= maxArgs {
		return fmt.Errorf("argument index %d out of range [0, %d]", c.Index, maxArgs-1)
	}
	if c.Low32 && (c.Value > math.MaxUint32 || c.Mask > math.MaxUint32) {
		return fmt.Errorf("arg%d: Low32 condition with a value or mask wider than 32 bits", c.Index)
	}
	switch c.Op {
	case Eq, Ne:
		if c.Mask != 0 {
			return fmt.Errorf("arg%d: Mask %#x set on %v comparison; use MaskedEq or MaskedNe", c.Index, c.Mask, c.Op)
		}
	case MaskedEq, MaskedNe:
		if c.Mask == 0 {
			return fmt.Errorf("arg%d: masked comparison with a zero mask", c.Index)
		}
		if c.Value&^c.Mask != 0 {
			return fmt.Errorf("arg%d: value %#x has bits outside mask %#x", c.Index, c.Value, c.Mask)
		}
	default:
		return fmt.Errorf("arg%d: invalid op %d", c.Index, uint8(c.Op))
	}
	return nil
}

func (c ArgCond) String() string {
	arg := fmt.Sprintf("arg%d", c.Index)
	if c.Low32 {
		arg = "lo32(" + arg + ")"
	}
	if c.Op == MaskedEq || c.Op == MaskedNe {
		return fmt.Sprintf("%s & %#x %v %#x", arg, c.Mask, c.Op, c.Value)
	}
	return fmt.Sprintf("%s %v %#x", arg, c.Op, c.Value)
}

// Rule applies Action to the system calls in Names when every condition in
// Conds holds. When a condition fails, evaluation falls through to the next
// rule naming the same system call, and finally to the policy default.
type Rule struct {
	Names  []string
	Action Action
	Conds  []ArgCond
}

// Policy is a complete seccomp policy. Rules are evaluated in order per
// system call; calls no rule matches get Default. A Policy is a value and
// is never modified by this package.
type Policy struct {
	Default Action
	Rules   []Rule
}

// Errors returned by [Policy.Compile] and [Install].
var (
	ErrUnsupportedArch = errors.New("seccomp: unsupported architecture")
	ErrUnknownSyscall  = errors.New("seccomp: unknown system call")
	ErrNoNewPrivs      = errors.New("seccomp: no_new_privs is not set")
)

// syscallInfo is one row of an architecture's syscall table.
type syscallInfo struct {
	name string
	nr   uint32
}

// arch describes what the compiler needs to know about an architecture.
type arch struct {
	name     string // human name, e.g. "x86_64"
	audit    uint32 // AUDIT_ARCH_* value found in seccomp_data.arch
	x32Bit   uint32 // syscall numbers with this bit set are killed; 0 for none
	syscalls []syscallInfo
}

// check is one conditional rule of a resolved syscall.
type check struct {
	rule   int // index in Policy.Rules, for messages
	action Action
	conds  []ArgCond
}

// outcome is everything that decides one syscall's action: conditional
// checks in order, then the action taken when none matches.
type outcome struct {
	checks   []check
	final    Action
	explicit bool // final comes from a rule rather than the policy default
}

func (o outcome) String() string {
	var b strings.Builder
	for _, c := range o.checks {
		b.WriteString(c.action.String())
		b.WriteString(" if ")
		for i, cond := range c.conds {
			if i > 0 {
				b.WriteString(" && ")
			}
			b.WriteString(cond.String())
		}
		b.WriteString("; else ")
	}
	b.WriteString(o.final.String())
	if !o.explicit {
		b.WriteString(" (default)")
	}
	return b.String()
}

// resolvedCall is a syscall named by the policy with its outcome.
type resolvedCall struct {
	syscallInfo
	outcome outcome
}

// resolve validates p against a and returns the syscalls it names, sorted by
// number.
func (p Policy) resolve(a arch) ([]resolvedCall, error) {
	if err := p.Default.validate(); err != nil {
		return nil, fmt.Errorf("seccomp: default action: %w", err)
	}
	byName := make(map[string]syscallInfo, len(a.syscalls))
	for _, s := range a.syscalls {
		byName[s.name] = s
	}
	type state struct {
		call     resolvedCall
		closedBy int // index of an unconditional rule, or -1
	}
	calls := make(map[string]*state)
	for i, r := range p.Rules {
		if err := r.validate(); err != nil {
			return nil, fmt.Errorf("seccomp: rule %d: %w", i, err)
		}
		for _, name := range r.Names {
			info, ok := byName[name]
			if !ok {
				return nil, fmt.Errorf("%w %q on %s (rule %d)", ErrUnknownSyscall, name, a.name, i)
			}
			st := calls[name]
			if st == nil {
				st = &state{call: resolvedCall{syscallInfo: info}, closedBy: -1}
				calls[name] = st
			}
			if st.closedBy >= 0 {
				return nil, fmt.Errorf("seccomp: rule %d: %q is unreachable: rule %d already matches it unconditionally", i, name, st.closedBy)
			}
			if len(r.Conds) == 0 {
				st.closedBy = i
				st.call.outcome.final = r.Action
				st.call.outcome.explicit = true
				continue
			}
			st.call.outcome.checks = append(st.call.outcome.checks, check{rule: i, action: r.Action, conds: r.Conds})
		}
	}
	out := make([]resolvedCall, 0, len(calls))
	for _, st := range calls {
		if st.closedBy < 0 {
			st.call.outcome.final = p.Default
		}
		out = append(out, st.call)
	}
	slices.SortFunc(out, func(x, y resolvedCall) int { return cmp.Compare(x.nr, y.nr) })
	return out, nil
}

func (r Rule) validate() error {
	if len(r.Names) == 0 {
		return errors.New("no system call names")
	}
	for i, n := range r.Names {
		if slices.Contains(r.Names[:i], n) {
			return fmt.Errorf("%q listed twice", n)
		}
	}
	if err := r.Action.validate(); err != nil {
		return fmt.Errorf("action: %w", err)
	}
	for _, c := range r.Conds {
		if err := c.validate(); err != nil {
			return err
		}
	}
	return nil
}
