//go:build linux

package seccomp

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRandomPolicies compiles random policies, with every op, argument
// and Low32 combination, and checks the program against the reference.
func TestRandomPolicies(t *testing.T) {
	a := requireNative(t)
	noX32 := a
	noX32.x32Bit = 0
	for seed := range uint64(200) {
		r := rand.New(rand.NewPCG(seed, 0x5eccc0b))
		target := a
		if seed%4 == 3 {
			target = noX32
		}
		p, pool := randomPolicy(r, target, 1+r.IntN(80))
		c := mustCompile(t, p, target)
		for range 300 {
			d := randomData(r, target, p, pool)
			if got, want := c.eval(t, d), reference(p, target, d); got != want {
				t.Fatalf("seed %d: %+v: got %s, want %s\npolicy:\n%s", seed, d, retString(got), retString(want), p.renderFor(target))
			}
		}
	}
}

// TestFarJumps builds a program far larger than a conditional jump's
// 255-instruction reach and checks every path through it.
func TestFarJumps(t *testing.T) {
	a := requireNative(t)
	p := Policy{Default: Errno(unix.ENOSYS)}
	for i, s := range a.syscalls {
		p.Rules = append(p.Rules, Rule{
			Names:  []string{s.name},
			Action: Errno(unix.Errno(1 + i%100)),
			Conds:  []ArgCond{{Index: i % maxArgs, Op: Eq, Value: uint64(i)<<32 | uint64(i)}},
		})
	}
	c := mustCompile(t, p, a)
	trampolines := 0
	for _, in := range c.prog {
		if in.Code == unix.BPF_JMP|unix.BPF_JA {
			trampolines++
		}
	}
	if len(c.prog) < 1000 || trampolines == 0 {
		t.Fatalf("program has %d instructions and %d JAs; the test needs a program that requires trampolines", len(c.prog), trampolines)
	}
	for i, s := range a.syscalls {
		for _, v := range []uint64{uint64(i)<<32 | uint64(i), uint64(i), 0} {
			d := seccompData{nr: s.nr, arch: a.audit}
			d.args[i%maxArgs] = v
			if got, want := c.eval(t, d), reference(p, a, d); got != want {
				t.Errorf("%s arg%d=%#x: got %s, want %s", s.name, i%maxArgs, v, retString(got), retString(want))
			}
		}
	}
}

var randomActions = []Action{Allow, KillProcess, Log, Errno(unix.EPERM), Errno(unix.ENOSYS), Errno(unix.EACCES), Errno(4095)}

// randomPolicy returns a valid random policy over a sample of a's syscalls
// and the argument values its conditions mention.
func randomPolicy(r *rand.Rand, a arch, nRules int) (Policy, []uint64) {
	names := make([]string, 1+r.IntN(40))
	for i := range names {
		names[i] = a.syscalls[r.IntN(len(a.syscalls))].name
	}
	pool := []uint64{0, 1, ^uint64(0), 0xffffffff, 1 << 32, 0x80000000}
	p := Policy{Default: randomActions[r.IntN(len(randomActions))]}
	closed := map[string]bool{} // names that already have an unconditional rule
	for range nRules {
		var rule Rule
		for range 1 + r.IntN(4) {
			n := names[r.IntN(len(names))]
			if !closed[n] && !slices.Contains(rule.Names, n) {
				rule.Names = append(rule.Names, n)
			}
		}
		if len(rule.Names) == 0 {
			continue
		}
		rule.Action = randomActions[r.IntN(len(randomActions))]
		for range r.IntN(4) {
			c := ArgCond{Index: r.IntN(maxArgs), Op: Op(1 + r.IntN(4)), Low32: r.IntN(2) == 0}
			c.Value = pool[r.IntN(len(pool))] ^ r.Uint64()&randomBits(r)
			if c.Op == MaskedEq || c.Op == MaskedNe {
				c.Mask = r.Uint64() | randomBits(r)
			}
			if c.Low32 {
				c.Value &= 0xffffffff
				c.Mask &= 0xffffffff
			}
			if c.Op == MaskedEq || c.Op == MaskedNe {
				if c.Mask == 0 {
					c.Mask = 1
				}
				c.Value &= c.Mask
			}
			pool = append(pool, c.Value, c.Value|c.Mask, c.Value^1<<32, c.Value^1)
			rule.Conds = append(rule.Conds, c)
		}
		if len(rule.Conds) == 0 {
			for _, n := range rule.Names {
				closed[n] = true
			}
		}
		p.Rules = append(p.Rules, rule)
	}
	return p, pool
}

// randomBits returns a mask with few or many bits set, so random values
// both hit and miss conditions.
func randomBits(r *rand.Rand) uint64 {
	switch r.IntN(3) {
	case 0:
		return 0
	case 1:
		return 1 << r.IntN(64)
	default:
		return r.Uint64()
	}
}

func randomData(r *rand.Rand, a arch, p Policy, pool []uint64) seccompData {
	d := seccompData{arch: a.audit}
	switch r.IntN(10) {
	case 0:
		d.arch = unix.AUDIT_ARCH_I386
	case 1:
		d.arch = r.Uint32()
	}
	switch k := r.IntN(10); {
	case k < 6 && len(p.Rules) > 0:
		rule := p.Rules[r.IntN(len(p.Rules))]
		d.nr = nrOfName(a, rule.Names[r.IntN(len(rule.Names))])
	case k < 8:
		d.nr = a.syscalls[r.IntN(len(a.syscalls))].nr
	case k < 9:
		d.nr = r.Uint32()
	default:
		d.nr = 0x40000000 | uint32(r.IntN(512))
	}
	for i := range d.args {
		d.args[i] = pool[r.IntN(len(pool))]
		if r.IntN(8) == 0 {
			d.args[i] = r.Uint64()
		}
	}
	return d
}

func nrOfName(a arch, name string) uint32 {
	for _, s := range a.syscalls {
		if s.name == name {
			return s.nr
		}
	}
	panic(fmt.Sprintf("%q not in table", name))
}
