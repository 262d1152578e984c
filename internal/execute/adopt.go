package execute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/internal/lang"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

// A daemon restart loses the registry but not the kernels: they are
// processes of the sandbox's agent, which outlives the daemon. The
// registry is rebuilt from the sandbox itself, lazily, on the first call
// about the sandbox (Contexts.boxOf): the agent's process list names every
// kernel by its tag, and the daemon re-attaches to its output (Connect)
// and its stdin (SendInput by pid).
//
// What is adopted: a running process whose tag is a kernel tag and whose
// command line, environment and working directory are exactly those the
// daemon starts kernels with (the kernel program of this build). Nothing
// in the sandbox can prove more than that: the kernel runs as `user`, so
// its tag, command line and environment (a secret put there included) are
// readable by the tenant, who can start an identical process. That is
// harmless: such a process is a kernel the tenant could have created
// through the API, in its own sandbox, within the same cap on contexts,
// and everything a kernel says is treated as hostile anyway. A kernel of
// another build (the daemon was upgraded) is not adopted: its protocol
// may differ.

// kernelTagPrefix starts the agent tag of every kernel process.
const kernelTagPrefix = "soulbox-context-"

// kernelTag is the agent tag of a kernel process:
// soulbox-context-<id>-<generation>, with "-default" for a default
// context. The generation is bumped by every restart of the context.
type kernelTag struct {
	id  string
	gen int
	def bool
}

func (t kernelTag) String() string {
	s := kernelTagPrefix + t.id + "-" + strconv.Itoa(t.gen)
	if t.def {
		s += "-default"
	}
	return s
}

// maxGeneration bounds the generation a tag may carry.
const maxGeneration = 1 << 30

// parseKernelTag reads a kernel tag; ok is false for any other string.
func parseKernelTag(s string) (kernelTag, bool) {
	rest, ok := strings.CutPrefix(s, kernelTagPrefix)
	if !ok {
		return kernelTag{}, false
	}
	var t kernelTag
	if r, ok := strings.CutSuffix(rest, "-default"); ok {
		rest, t.def = r, true
	}
	id, gen, ok := strings.Cut(rest, "-")
	if !ok || !isContextID(id) || gen == "" || gen[0] == '0' || len(gen) > 10 {
		return kernelTag{}, false
	}
	n, err := strconv.Atoi(gen)
	if err != nil || n < 1 || n > maxGeneration {
		return kernelTag{}, false
	}
	t.id, t.gen = id, n
	return t, true
}

// isContextID reports whether s is a context id as newID makes them: 16
// lowercase hex digits.
func isContextID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// found is a kernel process discover recognised.
type found struct {
	tag      kernelTag
	pid      uint32
	language string
	cwd      string
}

// recognise reports the kernel a process of the agent's list is, if it is
// one: a kernel tag, and the command line, environment and working
// directory Kernel.start uses.
func recognise(p *pb.ProcessInfo) (found, bool) {
	t, ok := parseKernelTag(p.GetTag())
	if !ok || p.GetPid() == 0 {
		return found{}, false
	}
	cfg := p.GetConfig()
	cwd := cfg.GetCwd()
	if cfg.Cwd == nil || !strings.HasPrefix(cwd, "/") || len(cwd) > 4096 {
		return found{}, false
	}
	for name, kd := range kernels {
		if cfg.GetCmd() != kd.argv[0] || !slices.Equal(cfg.GetArgs(), kd.argv[1:]) {
			continue
		}
		l, ok := lang.Lookup(kd.lang)
		if !ok || !maps.Equal(cfg.GetEnvs(), envMap(l.RunEnv(), nil)) {
			return found{}, false
		}
		return found{tag: t, pid: p.GetPid(), language: name, cwd: cwd}, true
	}
	return found{}, false
}

// discover lists the kernels running in the sandbox: per context id the
// process of the highest generation (a restart's new kernel, if the old
// one still runs), at most MaxContexts, by id.
func discover(ctx context.Context, a *Agent) ([]found, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := a.Procs.List(ctx, asUser(connect.NewRequest(&pb.ListRequest{})))
	if err != nil {
		return nil, fmt.Errorf("list the sandbox's processes to find its code contexts: %w", err)
	}
	byID := map[string]found{}
	for _, p := range resp.Msg.GetProcesses() {
		f, ok := recognise(p)
		if !ok {
			continue
		}
		if old, ok := byID[f.tag.id]; !ok || f.tag.gen > old.tag.gen {
			byID[f.tag.id] = f
		}
	}
	out := make([]found, 0, len(byID))
	for _, f := range byID {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tag.id < out[j].tag.id })
	if len(out) > MaxContexts {
		out = out[:MaxContexts]
	}
	return out, nil
}

// adopt registers the kernels already running in a sandbox (left by an
// earlier daemon) in b, which holds no context yet: b.load is held, and
// every other method waits for it.
func (c *Contexts) adopt(ctx context.Context, sandboxID string, b *box, a *Agent) error {
	fs, err := discover(ctx, a)
	if err != nil {
		return err
	}
	for _, f := range fs {
		k, err := attach(ctx, a, f)
		if err != nil {
			continue // it ended meanwhile
		}
		c.mu.Lock()
		_, taken := b.kernels[k.id]
		keep := c.box[sandboxID] == b && !taken && len(b.kernels) < MaxContexts
		if keep {
			b.kernels[k.id] = k
		}
		c.mu.Unlock()
		if !keep {
			k.forget()
			continue
		}
		// No execution may start before settle has drained the replay.
		k.exec.Lock()
		go k.settle(context.WithoutCancel(ctx))
	}
	return nil
}

// attach follows the output of a kernel process found in the sandbox.
func attach(ctx context.Context, a *Agent, f found) (*Kernel, error) {
	k := &Kernel{id: f.tag.id, language: f.language, cwd: f.cwd, def: f.tag.def, agent: a}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: f.pid}}
	stream, err := a.Procs.Connect(sctx, asUser(connect.NewRequest(&pb.ConnectRequest{Process: sel})))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("connect to the %s kernel %d: %w", f.language, f.pid, err)
	}
	start := time.AfterFunc(30*time.Second, cancel) // bounds the wait for the start event
	ok := stream.Receive() && stream.Msg().GetEvent().GetStart().GetPid() == f.pid
	start.Stop()
	if !ok {
		cancel()
		return nil, fmt.Errorf("connect to the %s kernel %d: %w", f.language, f.pid, errors.Join(errors.New("no start event"), stream.Err()))
	}
	k.pid, k.gen, k.cancel = f.pid, f.tag.gen, cancel
	go k.follow(connectEvents(stream), cancel, k.gen)
	return k, nil
}

// How long an adopted kernel is given to answer before its running
// execution (one in flight when the daemon stopped) is interrupted, and
// then to end it.
const (
	settleIdle      = 3 * time.Second
	settleInterrupt = 30 * time.Second
)

// settle makes an adopted kernel ready for executions. Connect replays the
// output the agent kept since the kernel started, and the execution that
// was running when the earlier daemon stopped may still run: its client is
// gone, so it is interrupted, as a client's disconnect interrupts one. A
// sync message (the kernel answers any message with an end line of its
// id) marks the end of both: whatever comes before its end is dropped.
// The caller holds the execution lock, and settle releases it: executions
// wait for it.
func (k *Kernel) settle(ctx context.Context) {
	defer k.exec.Unlock()
	k.mu.Lock()
	if k.dead {
		k.mu.Unlock()
		return
	}
	pid := k.pid
	id := newID()
	done := make(chan struct{})
	var once sync.Once
	k.sink = func(evID string, ev ContextEvent) {
		if ev.Type == "died" || ev.Type == "end" && evID == id {
			once.Do(func() { close(done) })
		}
	}
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.sink = nil
		k.mu.Unlock()
	}()
	line, _ := json.Marshal(map[string]string{"type": "sync", "id": id})
	sctx, cancel := context.WithTimeout(ctx, settleIdle+settleInterrupt)
	defer cancel()
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	in := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: append(line, '\n')}}
	if _, err := k.agent.Procs.SendInput(sctx, asUser(connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: in}))); err != nil {
		return // its end (if it ended) is seen by follow
	}
	select {
	case <-done:
		return
	case <-time.After(settleIdle):
	}
	_ = k.Interrupt(sctx)
	select {
	case <-done:
	case <-sctx.Done():
	}
}
