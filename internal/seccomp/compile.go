//go:build linux

package seccomp

import (
	"fmt"
	"math"
	"strings"

	"golang.org/x/sys/unix"
)

// Offsets into struct seccomp_data (include/uapi/linux/seccomp.h). BPF
// loads 32-bit words in native byte order; on little-endian machines the
// low half of a 64-bit argument comes first.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

func argLowOffset(i int) uint32  { return uint32(offArgs + 8*i) }
func argHighOffset(i int) uint32 { return uint32(offArgs + 8*i + 4) }

// Compile translates p into a seccomp-bpf program for the architecture the
// binary was built for. It fails, rather than producing a weaker filter, if
// the architecture is unsupported or p is invalid (an unknown system call,
// an unset action, a malformed condition, or a rule that can never match).
func (p Policy) Compile() ([]unix.SockFilter, error) {
	a, err := nativeArch()
	if err != nil {
		return nil, err
	}
	return p.compileFor(a)
}

// segment is a run of syscall numbers [start, next segment's start) that
// share one outcome.
type segment struct {
	start   uint32
	outcome int // index into compiler.outcomes
}

type compiler struct {
	asm      assembler
	outcomes []outcome        // distinct outcomes, in order of first use
	entry    []label          // entry label per outcome
	rets     map[uint32]label // shared return instruction per SECCOMP_RET value
	retOrder []uint32
}

func (p Policy) compileFor(a arch) ([]unix.SockFilter, error) {
	calls, err := p.resolve(a)
	if err != nil {
		return nil, err
	}
	c := &compiler{rets: make(map[uint32]label)}
	segs := c.segments(calls, p.Default)

	// Prologue: wrong architecture or x32 numbers kill the process.
	kill := c.retLabel(KillProcess)
	archOK := c.asm.newLabel()
	c.asm.loadWord(offArch)
	c.asm.jumpIf(unix.BPF_JEQ, a.audit, archOK, kill)
	c.asm.bind(archOK)
	c.asm.loadWord(offNr)
	if a.x32Bit != 0 {
		dispatch := c.asm.newLabel()
		c.asm.jumpIf(unix.BPF_JSET, a.x32Bit, kill, dispatch)
		c.asm.bind(dispatch)
	}

	// Binary search on the syscall number (in A) down to one segment.
	if len(segs) == 1 {
		c.asm.jumpTo(c.entry[segs[0].outcome])
	} else {
		c.searchNode(c.asm.newLabel(), segs)
	}

	// Argument checks for outcomes that have them.
	for i, o := range c.outcomes {
		if len(o.checks) > 0 {
			c.asm.bind(c.entry[i])
			c.emitChecks(o)
		}
	}

	// One return instruction per distinct action, at the end so that every
	// jump is forward.
	for _, r := range c.retOrder {
		c.asm.bind(c.rets[r])
		c.asm.ret(r)
	}
	return c.asm.assemble()
}

// retLabel returns the label of the shared "return a" instruction.
func (c *compiler) retLabel(a Action) label {
	r := a.ret()
	l, ok := c.rets[r]
	if !ok {
		l = c.asm.newLabel()
		c.rets[r] = l
		c.retOrder = append(c.retOrder, r)
	}
	return l
}

// outcomeID interns o and returns its index.
func (c *compiler) outcomeID(o outcome, keys map[string]int) int {
	k := outcomeKey(o)
	if id, ok := keys[k]; ok {
		return id
	}
	id := len(c.outcomes)
	keys[k] = id
	c.outcomes = append(c.outcomes, o)
	if len(o.checks) == 0 {
		c.entry = append(c.entry, c.retLabel(o.final))
	} else {
		c.entry = append(c.entry, c.asm.newLabel())
	}
	return id
}

func outcomeKey(o outcome) string {
	var b strings.Builder
	for _, ch := range o.checks {
		fmt.Fprintf(&b, "%d/%d:%v;", ch.action.kind, ch.action.errno, ch.conds)
	}
	fmt.Fprintf(&b, "%d/%d", o.final.kind, o.final.errno)
	return b.String()
}

// segments covers the whole 32-bit syscall number space with runs of equal
// outcome: the policy's calls, and the gaps between them, which get def.
// Adjacent runs with the same outcome are merged, so long stretches of
// allowed calls cost a single leaf in the search tree.
func (c *compiler) segments(calls []resolvedCall, def Action) []segment {
	keys := make(map[string]int)
	defID := c.outcomeID(outcome{final: def}, keys)
	var segs []segment
	add := func(start uint32, id int) {
		if n := len(segs); n > 0 && segs[n-1].outcome == id {
			return
		}
		segs = append(segs, segment{start: start, outcome: id})
	}
	next := uint32(0) // first number not yet covered
	for _, call := range calls {
		if call.nr > next {
			add(next, defID)
		}
		// Calls equivalent to the default, e.g. an explicit ENOSYS rule,
		// share the default's code.
		add(call.nr, c.outcomeID(call.outcome, keys))
		next = call.nr + 1
	}
	if len(calls) == 0 || calls[len(calls)-1].nr < math.MaxUint32 {
		add(next, defID)
	}
	return segs
}

// searchNode emits, at node, a binary search over segs (at least two) on
// the syscall number in A. Each comparison is followed by its left and then
// its right subtree, so all jumps are forward. A subtree that is a single
// segment needs no code: the comparison jumps straight to its outcome.
func (c *compiler) searchNode(node label, segs []segment) {
	mid := len(segs) / 2
	lo, hi := c.subtreeLabel(segs[:mid]), c.subtreeLabel(segs[mid:])
	c.asm.bind(node)
	c.asm.jumpIf(unix.BPF_JGE, segs[mid].start, hi, lo)
	if mid > 1 {
		c.searchNode(lo, segs[:mid])
	}
	if len(segs)-mid > 1 {
		c.searchNode(hi, segs[mid:])
	}
}

func (c *compiler) subtreeLabel(segs []segment) label {
	if len(segs) == 1 {
		return c.entry[segs[0].outcome]
	}
	return c.asm.newLabel()
}

// emitChecks emits an outcome's conditional rules in order; the first whose
// conditions all hold returns its action, otherwise the final action.
func (c *compiler) emitChecks(o outcome) {
	for i, ch := range o.checks {
		fail := c.retLabel(o.final)
		if i < len(o.checks)-1 {
			fail = c.asm.newLabel()
		}
		pass := c.retLabel(ch.action)
		for j, cond := range ch.conds {
			next := pass
			if j < len(ch.conds)-1 {
				next = c.asm.newLabel()
			}
			c.emitCond(cond, next, fail)
			if j < len(ch.conds)-1 {
				c.asm.bind(next)
			}
		}
		if i < len(o.checks)-1 {
			c.asm.bind(fail)
		}
	}
}

// emitCond emits code that jumps to pass if cond holds and to fail if not.
// The 64-bit comparison is done one 32-bit word at a time; words the mask
// ignores are not loaded at all.
func (c *compiler) emitCond(cond ArgCond, pass, fail label) {
	type word struct{ off, mask, want uint32 }
	m := cond.mask()
	var words []word
	if lo := uint32(m); lo != 0 {
		words = append(words, word{argLowOffset(cond.Index), lo, uint32(cond.Value)})
	}
	if hi := uint32(m >> 32); hi != 0 {
		words = append(words, word{argHighOffset(cond.Index), hi, uint32(cond.Value >> 32)})
	}
	// equal: where to go once every word has matched; differ: where to go
	// as soon as one word does not.
	equal, differ := pass, fail
	if cond.negated() {
		equal, differ = fail, pass
	}
	if len(words) == 0 { // validate rejects this; keep the semantics anyway
		c.asm.jumpTo(equal)
		return
	}
	for i, w := range words {
		c.asm.loadWord(w.off)
		if w.mask != math.MaxUint32 {
			c.asm.and(w.mask)
		}
		matched := equal
		if i < len(words)-1 {
			matched = c.asm.newLabel()
		}
		c.asm.jumpIf(unix.BPF_JEQ, w.want, matched, differ)
		if i < len(words)-1 {
			c.asm.bind(matched)
		}
	}
}
