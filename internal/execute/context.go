package execute

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/internal/lang"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

//go:embed kernel.py
var kernelPy string

//go:embed kernel.js
var kernelJS string

// kernels are the context languages: the registry entry whose tool and
// environment the kernel uses, and the kernel program, passed on the
// command line (nothing is installed in the sandbox).
var kernels = map[string]struct {
	lang string
	argv []string
}{
	"python":     {"python", []string{"python3", "-c", kernelPy}},
	"javascript": {"javascript", []string{"node", "-e", kernelJS}},
}

// Errors of contexts.
var (
	ErrContextNotFound = errors.New("code context not found")
	ErrKernelDead      = errors.New("the context's kernel has exited: restart the context")
	ErrTooManyContexts = errors.New("too many code contexts in this sandbox")
)

// MaxContexts caps the contexts of one sandbox.
const MaxContexts = 16

// ContextInfo describes a code context.
type ContextInfo struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
	Alive    bool   `json:"alive"`
}

// Kernel is one code context: a kernel process in a sandbox.
type Kernel struct {
	id, language, cwd string
	def               bool // a default context (Contexts.Default)
	agent             *Agent

	exec sync.Mutex // one execution at a time

	mu     sync.Mutex
	pid    uint32
	gen    int // bumped by every start
	dead   bool
	cancel context.CancelFunc
	sink   func(id string, ev ContextEvent) // the running execution's
}

// Info describes the context.
func (k *Kernel) Info() ContextInfo {
	k.mu.Lock()
	defer k.mu.Unlock()
	return ContextInfo{ID: k.id, Language: k.language, Cwd: k.cwd, Alive: !k.dead}
}

// start launches the kernel process and follows its output.
func (k *Kernel) start(ctx context.Context) error {
	kd := kernels[k.language]
	l, _ := lang.Lookup(kd.lang)
	yes := true
	cwd := k.cwd
	k.mu.Lock()
	tag := kernelTag{id: k.id, gen: k.gen + 1, def: k.def}.String()
	k.mu.Unlock()
	cfg := &pb.ProcessConfig{Cmd: kd.argv[0], Args: kd.argv[1:], Envs: envMap(l.RunEnv(), nil), Cwd: &cwd}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stream, err := k.agent.Procs.Start(sctx, asUser(connect.NewRequest(&pb.StartRequest{Process: cfg, Stdin: &yes, Tag: &tag})))
	if err != nil {
		cancel()
		return fmt.Errorf("start the %s kernel: %w", k.language, err)
	}
	if !stream.Receive() || stream.Msg().GetEvent().GetStart() == nil {
		cancel()
		return fmt.Errorf("start the %s kernel: %w", k.language, errors.Join(errors.New("no start event"), stream.Err()))
	}
	k.mu.Lock()
	k.pid, k.dead, k.cancel = stream.Msg().GetEvent().GetStart().GetPid(), false, cancel
	k.gen++
	gen := k.gen
	k.mu.Unlock()
	go k.follow(startEvents(stream), cancel, gen)
	return nil
}

// events is a stream of a process's events: Start's or Connect's.
type events struct {
	receive func() bool
	event   func() *pb.ProcessEvent
	close   func() error
}

func startEvents(s *connect.ServerStreamForClient[pb.StartResponse]) events {
	return events{s.Receive, func() *pb.ProcessEvent { return s.Msg().GetEvent() }, s.Close}
}

func connectEvents(s *connect.ServerStreamForClient[pb.ConnectResponse]) events {
	return events{s.Receive, func() *pb.ProcessEvent { return s.Msg().GetEvent() }, s.Close}
}

// follow reads the kernel's output until it ends.
func (k *Kernel) follow(stream events, cancel context.CancelFunc, gen int) {
	defer cancel()
	defer func() { _ = stream.close() }()
	sp := lineSplitter{max: MaxKernelLine}
	deliver := func(id string, ev ContextEvent) {
		k.mu.Lock()
		sink := k.sink
		k.mu.Unlock()
		if sink != nil {
			sink(id, ev)
		}
	}
	for stream.receive() {
		ev := stream.event()
		if d := ev.GetData(); d != nil {
			if b := d.GetStderr(); len(b) > 0 {
				deliver("", ContextEvent{Type: "stderr", Text: validUTF8(string(b))})
			}
			sp.feed(d.GetStdout(), func(line []byte) {
				id, ev, err := parseKernelLine(line)
				if err != nil {
					ev = ContextEvent{Type: "stderr", Text: "soulbox: bad kernel message: " + err.Error() + "\n"}
				}
				deliver(id, ev)
			}, func() {
				deliver("", ContextEvent{Type: "stderr", Text: "soulbox: a kernel message over the size cap was dropped\n"})
			})
		}
		if ev.GetEnd() != nil {
			break
		}
	}
	k.mu.Lock()
	current := k.gen == gen
	if current {
		k.dead = true
	}
	sink := k.sink
	k.mu.Unlock()
	if !current {
		return
	}
	if sink != nil {
		sink("", ContextEvent{Type: "died"})
	}
}

// Execute runs code in the context; emit receives stdout, stderr, result
// and error events and, last, end. A zero timeout means none; at the
// timeout or when ctx ends, the execution is interrupted.
func (k *Kernel) Execute(ctx context.Context, code string, timeout time.Duration, emit func(ContextEvent)) error {
	return k.ExecuteEnv(ctx, code, nil, timeout, emit)
}

// ExecuteEnv is Execute with environment variables set in the kernel for
// this execution only (the earlier values come back after it).
func (k *Kernel) ExecuteEnv(ctx context.Context, code string, env map[string]string, timeout time.Duration, emit func(ContextEvent)) error {
	if err := CheckExecution(code, env); err != nil {
		return err
	}
	k.exec.Lock()
	defer k.exec.Unlock()
	k.mu.Lock()
	if k.dead {
		k.mu.Unlock()
		return ErrKernelDead
	}
	pid := k.pid
	id := newID()
	done := make(chan ContextEvent, 1)
	var total int
	var over bool
	var once sync.Once
	finish := func(ev ContextEvent) { once.Do(func() { done <- ev }) }
	k.sink = func(evID string, ev ContextEvent) {
		switch {
		case ev.Type == "died":
			finish(ev)
			return
		case evID != "" && evID != id:
			return // a late line of an earlier execution
		case ev.Type == "end":
			finish(ev)
			return
		}
		n := len(ev.Text)
		if ev.Result != nil {
			n += len(ev.Result.Text) + len(ev.Result.HTML) + len(ev.Result.PNG) + len(ev.Result.JPEG) + len(ev.Result.SVG) + len(ev.Result.Data) + len(ev.Result.Markdown) + len(ev.Result.LaTeX)
		}
		if ev.Error != nil {
			n += len(ev.Error.Traceback) + len(ev.Error.Value)
		}
		total += n
		if total > MaxExecutionBytes {
			if !over {
				over = true
				emit(ContextEvent{Type: "stderr", Text: "soulbox: the execution's output is over the cap; the rest is dropped\n"})
			}
			return
		}
		emit(ev)
	}
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.sink = nil
		k.mu.Unlock()
	}()
	line, _ := json.Marshal(map[string]any{"type": "execute", "id": id, "code": code, "env": env})
	line = append(line, '\n')
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}
	for off := 0; off < len(line); off += 1 << 20 {
		in := &pb.ProcessInput{Input: &pb.ProcessInput_Stdin{Stdin: line[off:min(off+1<<20, len(line))]}}
		if _, err := k.agent.Procs.SendInput(ctx, asUser(connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: in}))); err != nil {
			return fmt.Errorf("send the code to the kernel: %w", err)
		}
	}
	var tc <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		tc = t.C
	}
	for {
		select {
		case ev := <-done:
			if ev.Type == "died" {
				emit(ContextEvent{Type: "error", Error: &KernelError{Name: "KernelDied", Value: "the kernel exited", Traceback: "the kernel process exited during the execution; restart the context"}})
				return ErrKernelDead
			}
			emit(ev)
			return nil
		case <-tc:
			tc = nil
			_ = k.Interrupt(context.WithoutCancel(ctx))
		case <-ctx.Done():
			_ = k.Interrupt(context.WithoutCancel(ctx))
			select {
			case <-done:
			case <-time.After(5 * time.Second):
			}
			return ctx.Err()
		}
	}
}

// Caps on the environment of one execution.
const (
	maxExecEnvVars  = 256
	maxExecEnvBytes = 1 << 20
)

// CheckExecution reports the ErrBadRequest ExecuteEnv would refuse code
// and env with: code over the size cap, variables a kernel could not set
// (empty names, names with '=' or NUL, values with NUL), too many or too
// large.
func CheckExecution(code string, env map[string]string) error {
	if len(code) > maxCodeBytes {
		return fmt.Errorf("%w: code over %d bytes", ErrBadRequest, maxCodeBytes)
	}
	if len(env) > maxExecEnvVars {
		return fmt.Errorf("%w: at most %d environment variables", ErrBadRequest, maxExecEnvVars)
	}
	n := 0
	for k, v := range env {
		n += len(k) + len(v)
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: environment variable %q: names must be non-empty without '=' or NUL, values without NUL", ErrBadRequest, k)
		}
	}
	if n > maxExecEnvBytes {
		return fmt.Errorf("%w: environment variables over %d bytes", ErrBadRequest, maxExecEnvBytes)
	}
	return nil
}

// Interrupt sends SIGINT to the kernel: the running execution ends with
// a KeyboardInterrupt (Python) or an interrupted-script error (Node).
// The agent signals only SIGTERM and SIGKILL, so a shell run as the same
// user sends it.
func (k *Kernel) Interrupt(ctx context.Context) error {
	k.mu.Lock()
	pid, dead := k.pid, k.dead
	k.mu.Unlock()
	if dead {
		return ErrKernelDead
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	end, err := k.agent.run(ctx, procSpec{argv: []string{"/bin/sh", "-c", "kill -INT " + strconv.FormatUint(uint64(pid), 10)}})
	if err != nil {
		return err
	}
	if !end.exited || end.exitCode != 0 {
		return fmt.Errorf("interrupt: kill: %s", end.status)
	}
	return nil
}

// stop kills the kernel process.
func (k *Kernel) stop(ctx context.Context) {
	k.mu.Lock()
	pid, cancel := k.pid, k.cancel
	k.dead = true
	k.cancel = nil
	k.mu.Unlock()
	if pid != 0 {
		k.agent.kill(ctx, pid)
	}
	if cancel != nil {
		cancel()
	}
}

// Restart kills the kernel and starts a fresh one: every variable is gone.
func (k *Kernel) Restart(ctx context.Context) error {
	k.exec.Lock()
	defer k.exec.Unlock()
	k.stop(ctx)
	return k.start(ctx)
}

// Contexts holds the code contexts of every sandbox. It is safe for
// concurrent use. The registry lives in the daemon's memory, but a
// sandbox's kernels outlive the daemon: the first call about a sandbox
// (every method but Forget takes its agent) finds the kernels already
// running in it (see discover) and adopts them, so contexts survive a
// daemon restart. Forget drops a sandbox that is gone.
type Contexts struct {
	mu  sync.Mutex
	box map[string]*box
}

// box is the contexts of one sandbox.
type box struct {
	load   sync.Mutex // held while its kernels are discovered
	loaded bool       // under load
	def    sync.Mutex // held while a default context is found or started

	kernels map[string]*Kernel // under Contexts.mu
}

// NewContexts returns an empty registry.
func NewContexts() *Contexts { return &Contexts{box: map[string]*box{}} }

// Languages lists the languages contexts support.
func ContextLanguages() []string { return []string{"javascript", "python"} }

// boxOf returns the sandbox's contexts, made on first use and, with an
// agent, with the kernels already running in the sandbox adopted. A nil
// agent (a sandbox that cannot answer, paused) skips the discovery: only
// the contexts known so far are seen.
func (c *Contexts) boxOf(ctx context.Context, sandboxID string, a *Agent) (*box, error) {
	c.mu.Lock()
	b := c.box[sandboxID]
	if b == nil {
		b = &box{kernels: map[string]*Kernel{}}
		c.box[sandboxID] = b
	}
	c.mu.Unlock()
	if a == nil {
		return b, nil
	}
	b.load.Lock()
	defer b.load.Unlock()
	if b.loaded {
		return b, nil
	}
	if err := c.adopt(ctx, sandboxID, b, a); err != nil {
		return nil, err
	}
	b.loaded = true
	return b, nil
}

// Create starts a context in a sandbox. cwd "" is the user's home.
func (c *Contexts) Create(ctx context.Context, sandboxID string, a *Agent, language, cwd string) (*Kernel, error) {
	b, err := c.boxOf(ctx, sandboxID, a)
	if err != nil {
		return nil, err
	}
	return c.create(ctx, sandboxID, b, a, language, cwd, false)
}

// Default returns the sandbox's default context of a language (E2B's
// code interpreter runs code that names no context in it), started on
// first use. Default contexts are ordinary contexts otherwise: listed,
// deleted (the next Default starts another) and restarted like any.
func (c *Contexts) Default(ctx context.Context, sandboxID string, a *Agent, language string) (*Kernel, error) {
	b, err := c.boxOf(ctx, sandboxID, a)
	if err != nil {
		return nil, err
	}
	b.def.Lock()
	defer b.def.Unlock()
	var found *Kernel
	c.mu.Lock()
	for _, k := range b.kernels {
		if k.def && k.language == language && (found == nil || k.id < found.id) {
			found = k
		}
	}
	c.mu.Unlock()
	if found != nil {
		return found, nil
	}
	return c.create(ctx, sandboxID, b, a, language, "", true)
}

func (c *Contexts) create(ctx context.Context, sandboxID string, b *box, a *Agent, language, cwd string, def bool) (*Kernel, error) {
	l, ok := lang.Lookup(language)
	if !ok {
		return nil, fmt.Errorf("%w: unknown language %q", ErrBadRequest, language)
	}
	if _, ok := kernels[l.Name]; !ok {
		return nil, fmt.Errorf("%w: code contexts support %v, not %s", ErrBadRequest, ContextLanguages(), l.Name)
	}
	if cwd == "" {
		cwd = "/home/user"
	}
	if cwd[0] != '/' || len(cwd) > 4096 {
		return nil, fmt.Errorf("%w: cwd must be an absolute path", ErrBadRequest)
	}
	k := &Kernel{id: newID(), language: l.Name, cwd: cwd, def: def, agent: a}
	c.mu.Lock()
	if len(b.kernels) >= MaxContexts {
		c.mu.Unlock()
		return nil, fmt.Errorf("%w (%d)", ErrTooManyContexts, MaxContexts)
	}
	b.kernels[k.id] = k // reserve the slot
	c.mu.Unlock()
	if err := k.start(ctx); err != nil {
		c.mu.Lock()
		delete(b.kernels, k.id)
		c.mu.Unlock()
		return nil, err
	}
	return k, nil
}

// Get finds a context of a sandbox.
func (c *Contexts) Get(ctx context.Context, sandboxID string, a *Agent, id string) (*Kernel, error) {
	b, err := c.boxOf(ctx, sandboxID, a)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := b.kernels[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrContextNotFound, id)
	}
	return k, nil
}

// List describes the contexts of a sandbox, sorted by id.
func (c *Contexts) List(ctx context.Context, sandboxID string, a *Agent) ([]ContextInfo, error) {
	b, err := c.boxOf(ctx, sandboxID, a)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	ks := make([]*Kernel, 0, len(b.kernels))
	for _, k := range b.kernels {
		ks = append(ks, k)
	}
	c.mu.Unlock()
	out := make([]ContextInfo, 0, len(ks))
	for _, k := range ks {
		out = append(out, k.Info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Delete kills a context's kernel and forgets it.
func (c *Contexts) Delete(ctx context.Context, sandboxID string, a *Agent, id string) error {
	b, err := c.boxOf(ctx, sandboxID, a)
	if err != nil {
		return err
	}
	c.mu.Lock()
	k, ok := b.kernels[id]
	delete(b.kernels, id)
	c.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrContextNotFound, id)
	}
	k.stop(ctx)
	return nil
}

// Forget drops every context of a sandbox that is gone (its kernels went
// with it).
func (c *Contexts) Forget(sandboxID string) {
	c.mu.Lock()
	b := c.box[sandboxID]
	delete(c.box, sandboxID)
	var ks []*Kernel
	if b != nil {
		for _, k := range b.kernels {
			ks = append(ks, k)
		}
	}
	c.mu.Unlock()
	for _, k := range ks {
		k.forget()
	}
}

// forget marks the kernel dead and stops following it, without killing
// it (its sandbox is gone, or it was never adopted).
func (k *Kernel) forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dead = true
	if k.cancel != nil {
		k.cancel()
	}
}
