// Package sandbox is the daemon's sandbox manager: the lifecycle of
// long-lived sandboxes (create, get, list, kill, timeouts, pause, resume,
// connect), their records in the store, and their re-adoption when the
// daemon restarts. It knows nothing of HTTP; internal/api maps its errors
// to status codes.
//
// Each live sandbox has one entry; operations on one sandbox are
// serialised by the entry's lock, and operations on different sandboxes
// run in parallel. A sandbox outlives the Manager: Close stops the timers
// and leaves every sandbox running, for the next daemon to adopt.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/image"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/runtime"
	"github.com/soulbox-dev/soulbox/internal/store"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = errors.New("sandbox not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid request")
)

// State is a sandbox's state.
type State string

// States.
const (
	Running State = "running"
	Paused  State = "paused"
)

// Box is a live sandbox as the runtime provides it.
type Box interface {
	Handle() runtime.Handle
	Pause() error
	Resume() error
	Kill() error
	SetLimits(l limits.Limits) error
	SetEnv(ctx context.Context, env map[string]string) error
	Done() <-chan struct{}
	// AgentLog is the end of the agent's own diagnostics (its stderr), to
	// say why a sandbox ended on its own.
	AgentLog() string
	// UnstallCPU releases tasks CFS throttling may have stranded (see
	// WatchCPU and runtime.Sandbox.UnstallCPU).
	UnstallCPU() (stalled, rewritten bool, err error)
	Usage() (runtime.Usage, error)
	Dial(ctx context.Context) (net.Conn, error)
	HTTPClient(h2c bool) *http.Client
	// PortTransport reaches TCP ports listening inside the sandbox
	// (http://127.0.0.1:PORT/ is PORT in the sandbox).
	PortTransport() http.RoundTripper
	// DialPort connects to a TCP port listening inside the sandbox.
	DialPort(ctx context.Context, port int) (net.Conn, error)
	SetEgress(r netsetup.Rules) error
}

// Runtime is what the manager needs of internal/runtime (an interface so
// the state machine is unit-tested without root).
type Runtime interface {
	Start(ctx context.Context, s runtime.Spec) (Box, error)
	Adopt(h runtime.Handle) (Box, error)
	LiveSandboxes() ([]runtime.Handle, error)
	Destroy(ctx context.Context, h runtime.Handle) error
	RemoveStaleDirs(keep func(id string) bool) error
}

// FromRuntime adapts the isolation runtime.
func FromRuntime(rt *runtime.Runtime) Runtime { return rtAdapter{rt} }

type rtAdapter struct{ *runtime.Runtime }

func (a rtAdapter) Start(ctx context.Context, s runtime.Spec) (Box, error) {
	b, err := a.Runtime.Start(ctx, s)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (a rtAdapter) Adopt(h runtime.Handle) (Box, error) {
	b, err := a.Runtime.Adopt(h)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Config configures a Manager.
type Config struct {
	Runtime Runtime
	Store   *store.Store
	Logger  *slog.Logger
	// Defaults are the limits of a sandbox that asks for none; Max are
	// the administrator's maximums.
	Defaults, Max limits.Limits
	// DefaultTimeout applies when a create request gives none;
	// MaxTimeout caps every timeout.
	DefaultTimeout, MaxTimeout time.Duration
	// MaxSandboxes caps the live sandboxes of the whole daemon.
	MaxSandboxes int
	// Images holds the templates other than the built-in host template
	// (the zero value: this host's).
	Images image.Store
	Now    func() time.Time // nil: time.Now
}

// DefaultLimits are the limits of a long-lived sandbox that asks for none.
func DefaultLimits() limits.Limits {
	l := limits.Defaults()
	l.MemoryBytes = 1 << 30
	l.DiskBytes = 1 << 30
	l.Pids = 512
	l.FileBytes = 1 << 30
	// Run-only limits (CPU and wall time, output) do not apply to a
	// long-lived sandbox: its timeout does.
	return l
}

// Manager owns the live sandboxes.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	entries map[string]*entry
	removed []func(id string) // OnRemoved callbacks, under mu
	closed  bool
	pool    *pool // nil without a warm pool
}

// entry is one live sandbox. Its lock serialises operations on it.
type entry struct {
	mu    sync.Mutex
	rec   Record
	box   Box
	timer *time.Timer
	gone  bool // killed or died; the entry is being removed
}

// Record is what the store keeps of a sandbox.
type Record struct {
	Info
	Handle runtime.Handle `json:"handle"`
	// Remaining is the timeout left when the sandbox was paused.
	Remaining time.Duration `json:"remaining,omitempty"`
}

// Info describes a sandbox to its owner.
type Info struct {
	ID          string            `json:"id"`
	Team        string            `json:"team"`
	Template    string            `json:"template"`
	AccessToken string            `json:"access_token"`
	State       State             `json:"state"`
	StartedAt   time.Time         `json:"started_at"`
	EndAt       time.Time         `json:"end_at"` // when running: the deadline
	AutoPause   bool              `json:"auto_pause"`
	Metadata    map[string]string `json:"metadata"`
	Env         map[string]string `json:"env"`
	Limits      limits.Limits     `json:"limits"`
	// TrafficAccessToken, if set, is required (header
	// e2b-traffic-access-token) to reach the sandbox's exposed ports;
	// without it they are public, as E2B's are by default.
	TrafficAccessToken string `json:"traffic_access_token,omitempty"`
	// Egress is the sandbox's egress rules; nil: loopback only.
	Egress *netsetup.Rules `json:"egress,omitempty"`
}

// New creates a Manager; call Recover before serving.
func New(cfg Config) *Manager {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Defaults == (limits.Limits{}) {
		cfg.Defaults = DefaultLimits()
	}
	if cfg.Max == (limits.Limits{}) {
		cfg.Max = limits.Maximums()
	}
	if cfg.DefaultTimeout == 0 {
		cfg.DefaultTimeout = 5 * time.Minute
	}
	if cfg.MaxTimeout == 0 {
		cfg.MaxTimeout = 24 * time.Hour
	}
	if cfg.MaxSandboxes == 0 {
		cfg.MaxSandboxes = 2000
	}
	return &Manager{cfg: cfg, log: cfg.Logger, entries: map[string]*entry{}}
}

// CreateRequest asks for a new sandbox. Zero fields take defaults.
type CreateRequest struct {
	Team      string
	Template  string
	Timeout   time.Duration
	AutoPause bool
	Metadata  map[string]string
	Env       map[string]string
	Limits    LimitsRequest
	// PrivatePorts makes the exposed ports require a traffic access
	// token (E2B's network.allowPublicTraffic false).
	PrivatePorts bool
	// Egress, if set, gives the sandbox network egress under these rules.
	Egress *netsetup.Rules
}

// LimitsRequest overrides some of the default limits.
type LimitsRequest struct {
	CPUs        *float64
	MemoryBytes *int64
	DiskBytes   *int64
	Pids        *int64
}

// TemplateCodeInterpreter is the template name the E2B code-interpreter
// SDKs create sandboxes from by default. It is the host template too; a
// sandbox created from it also answers E2B's code-interpreter protocol on
// port 49999 (served by the daemon, see internal/codeinterp).
const TemplateCodeInterpreter = "code-interpreter-v1"

// Templates a sandbox can be created from: "host" is the built-in view of
// the host's system; "base" (the E2B SDKs' default) and
// TemplateCodeInterpreter are accepted as its aliases (image.Builtin);
// every other name is an imported image (internal/image).

const (
	maxMetadata    = 64
	maxKeyLen      = 256
	maxValueLen    = 4096
	maxEnvVars     = 256
	maxEnvValueLen = 32 << 10
)

func (m *Manager) validate(r *CreateRequest) (limits.Limits, error) {
	if r.Template == "" {
		r.Template = "base"
	}
	if !image.IsBuiltin(r.Template) {
		if _, err := m.cfg.Images.Root(r.Template); err != nil {
			return limits.Limits{}, fmt.Errorf("%w: unknown template %q (built in: %s; imported: see `soulbox template list`)", ErrNotFound, r.Template, strings.Join(image.Builtin, ", "))
		}
	}
	if r.Timeout == 0 {
		r.Timeout = m.cfg.DefaultTimeout
	}
	if err := m.checkTimeout(r.Timeout); err != nil {
		return limits.Limits{}, err
	}
	if len(r.Metadata) > maxMetadata {
		return limits.Limits{}, fmt.Errorf("%w: at most %d metadata entries", ErrInvalid, maxMetadata)
	}
	for k, v := range r.Metadata {
		if k == "" || len(k) > maxKeyLen || len(v) > maxValueLen {
			return limits.Limits{}, fmt.Errorf("%w: metadata keys must be 1-%d bytes and values at most %d", ErrInvalid, maxKeyLen, maxValueLen)
		}
	}
	if r.Egress != nil {
		if err := r.Egress.Validate(); err != nil {
			return limits.Limits{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if len(r.Env) > maxEnvVars {
		return limits.Limits{}, fmt.Errorf("%w: at most %d environment variables", ErrInvalid, maxEnvVars)
	}
	for k, v := range r.Env {
		if k == "" || len(k) > maxKeyLen || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 || len(v) > maxEnvValueLen {
			return limits.Limits{}, fmt.Errorf("%w: environment variable %q: names must be 1-%d bytes without '=' or NUL, values without NUL", ErrInvalid, k, maxKeyLen)
		}
	}
	l := m.cfg.Defaults
	if p := r.Limits.CPUs; p != nil {
		l.CPUs = *p
	}
	if p := r.Limits.MemoryBytes; p != nil {
		l.MemoryBytes = *p
	}
	if p := r.Limits.DiskBytes; p != nil {
		l.DiskBytes = *p
	}
	if p := r.Limits.Pids; p != nil {
		l.Pids = *p
	}
	l.ShmBytes = min(l.ShmBytes, l.DiskBytes)
	if err := l.Validate(m.cfg.Max); err != nil {
		return limits.Limits{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return l, nil
}

func (m *Manager) checkTimeout(d time.Duration) error {
	if d < time.Second || d > m.cfg.MaxTimeout {
		return fmt.Errorf("%w: timeout %s is outside [1s, %s]", ErrInvalid, d, m.cfg.MaxTimeout)
	}
	return nil
}

// Create starts a sandbox; it returns once the sandbox serves commands.
func (m *Manager) Create(ctx context.Context, r CreateRequest) (Info, error) {
	l, err := m.validate(&r)
	if err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return Info{}, errors.New("the daemon is shutting down")
	}
	if len(m.entries) >= m.cfg.MaxSandboxes {
		m.mu.Unlock()
		return Info{}, fmt.Errorf("%w: the daemon's limit of %d live sandboxes is reached", ErrConflict, m.cfg.MaxSandboxes)
	}
	p := m.pool
	m.mu.Unlock()
	box := m.fromPool(ctx, p, r, l)
	if box == nil {
		env := make([]string, 0, len(r.Env))
		for _, k := range slices.Sorted(maps.Keys(r.Env)) {
			env = append(env, k+"="+r.Env[k])
		}
		var err error
		box, err = m.cfg.Runtime.Start(ctx, runtime.Spec{Env: env, Limits: l, Egress: r.Egress, Template: r.Template})
		if err != nil {
			if errors.Is(err, runtime.ErrInvalidSpec) || errors.Is(err, limits.ErrInvalid) {
				return Info{}, fmt.Errorf("%w: %v", ErrInvalid, err)
			}
			return Info{}, err
		}
	}
	now := m.cfg.Now()
	e := &entry{box: box, rec: Record{
		Info: Info{
			ID: box.Handle().ID, Team: r.Team, Template: r.Template, AccessToken: newToken(),
			State: Running, StartedAt: now.UTC(), EndAt: now.Add(r.Timeout).UTC(), AutoPause: r.AutoPause,
			Metadata: orEmpty(r.Metadata), Env: orEmpty(r.Env), Limits: l,
		},
		Handle: box.Handle(),
	}}
	if r.PrivatePorts {
		e.rec.TrafficAccessToken = newToken()
	}
	e.rec.Egress = r.Egress
	if err := m.save(ctx, e); err != nil {
		box.Kill()
		return Info{}, err
	}
	m.mu.Lock()
	m.entries[e.rec.ID] = e
	m.mu.Unlock()
	e.mu.Lock()
	m.arm(e)
	in := m.view(e)
	e.mu.Unlock()
	go m.watch(e)
	return in, nil
}

// fromPool takes a warm sandbox and fits it to the request (limits other
// than the disk size can change on a live sandbox; the environment is set
// through the agent), or returns nil to start one cold.
func (m *Manager) fromPool(ctx context.Context, p *pool, r CreateRequest, l limits.Limits) Box {
	// Pooled sandboxes have loopback only (egress needs a cold start)
	// and the host template.
	if p == nil || r.Egress != nil || !image.IsBuiltin(r.Template) || l.DiskBytes != m.cfg.Defaults.DiskBytes || l.ShmBytes != m.cfg.Defaults.ShmBytes {
		return nil
	}
	box := p.take()
	if box == nil {
		return nil
	}
	var err error
	if l != m.cfg.Defaults {
		err = box.SetLimits(l)
	}
	if err == nil && len(r.Env) > 0 {
		err = box.SetEnv(ctx, r.Env)
	}
	if err != nil {
		m.log.Warn("warm pool: fitting a sandbox failed; starting one cold", "err", err)
		box.Kill()
		return nil
	}
	return box
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func newToken() string {
	var b [24]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// save writes the entry's record; the caller holds e.mu or owns e alone.
func (m *Manager) save(ctx context.Context, e *entry) error {
	b, err := json.Marshal(e.rec)
	if err != nil {
		return err
	}
	return m.cfg.Store.PutSandbox(context.WithoutCancel(ctx), store.SandboxRecord{ID: e.rec.ID, Team: e.rec.Team, Record: b})
}

// arm (re)starts the timeout timer of a running sandbox; e.mu is held.
func (m *Manager) arm(e *entry) {
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.rec.State != Running || e.gone {
		return
	}
	d := max(e.rec.EndAt.Sub(m.cfg.Now()), 0)
	id := e.rec.ID
	e.timer = time.AfterFunc(d, func() { m.expire(id) })
}

// expire ends (or pauses, with auto-pause) a sandbox whose time is up.
func (m *Manager) expire(id string) {
	e := m.entry(id)
	if e == nil {
		return
	}
	e.mu.Lock()
	if e.gone || e.rec.State != Running || m.cfg.Now().Before(e.rec.EndAt) {
		// Stale timer: the deadline moved or the sandbox paused.
		m.armIfEarly(e)
		e.mu.Unlock()
		return
	}
	if e.rec.AutoPause {
		err := m.pauseLocked(context.Background(), e)
		e.mu.Unlock()
		if err != nil {
			m.log.Error("auto-pause on timeout failed; killing", "sandbox", id, "err", err)
			m.remove(context.Background(), id)
		} else {
			m.log.Info("sandbox paused on timeout", "sandbox", id)
		}
		return
	}
	e.mu.Unlock()
	m.log.Info("sandbox timed out", "sandbox", id)
	m.remove(context.Background(), id)
}

func (m *Manager) armIfEarly(e *entry) {
	if !e.gone && e.rec.State == Running && m.cfg.Now().Before(e.rec.EndAt) {
		m.arm(e)
	}
}

// watch removes a sandbox that ends on its own (its agent died).
func (m *Manager) watch(e *entry) {
	<-e.box.Done()
	e.mu.Lock()
	gone := e.gone
	e.mu.Unlock()
	if !gone {
		m.log.Warn("sandbox ended on its own", "sandbox", e.rec.ID, "agent_log", e.box.AgentLog())
		m.remove(context.Background(), e.rec.ID)
	}
}

func (m *Manager) entry(id string) *entry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[id]
}

// lookup returns the team's live entry, locked; ErrNotFound otherwise
// (also for another team's sandbox, whose existence is not revealed).
func (m *Manager) lookup(team, id string) (*entry, error) {
	e := m.entry(id)
	if e == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e.mu.Lock()
	if e.gone || e.rec.Team != team {
		e.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return e, nil
}

// Get returns a sandbox of the team.
func (m *Manager) Get(team, id string) (Info, error) {
	e, err := m.lookup(team, id)
	if err != nil {
		return Info{}, err
	}
	defer e.mu.Unlock()
	return m.view(e), nil
}

// view is the entry's Info with EndAt meaningful in both states; e.mu held.
func (m *Manager) view(e *entry) Info {
	in := e.rec.Info
	if in.State == Paused {
		in.EndAt = m.cfg.Now().Add(e.rec.Remaining).UTC()
	}
	in.Metadata = maps.Clone(in.Metadata)
	in.Env = maps.Clone(in.Env)
	return in
}

// Kill ends a sandbox of the team.
func (m *Manager) Kill(ctx context.Context, team, id string) error {
	e, err := m.lookup(team, id)
	if err != nil {
		return err
	}
	e.mu.Unlock()
	return m.remove(ctx, id)
}

// remove kills a sandbox and forgets it.
func (m *Manager) remove(ctx context.Context, id string) error {
	e := m.entry(id)
	if e == nil {
		return nil
	}
	e.mu.Lock()
	if e.gone {
		e.mu.Unlock()
		return nil
	}
	e.gone = true
	if e.timer != nil {
		e.timer.Stop()
	}
	e.mu.Unlock()
	killErr := e.box.Kill()
	m.mu.Lock()
	delete(m.entries, id)
	removed := m.removed
	m.mu.Unlock()
	for _, f := range removed {
		f(id)
	}
	return errors.Join(killErr, m.cfg.Store.DeleteSandbox(context.WithoutCancel(ctx), id))
}

// OnRemoved registers f to be called with the id of every sandbox that
// goes away (killed, timed out, or dead on its own), after it is gone.
func (m *Manager) OnRemoved(f func(id string)) {
	m.mu.Lock()
	m.removed = append(m.removed, f)
	m.mu.Unlock()
}

// SetTimeout makes the sandbox expire d from now (when paused: d after it
// resumes).
func (m *Manager) SetTimeout(ctx context.Context, team, id string, d time.Duration) error {
	if err := m.checkTimeout(d); err != nil {
		return err
	}
	e, err := m.lookup(team, id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.rec.State == Paused {
		e.rec.Remaining = d
	} else {
		e.rec.EndAt = m.cfg.Now().Add(d).UTC()
	}
	m.arm(e)
	return m.save(ctx, e)
}

// Pause freezes every process of the sandbox and stops its timeout clock.
func (m *Manager) Pause(ctx context.Context, team, id string) error {
	e, err := m.lookup(team, id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	return m.pauseLocked(ctx, e)
}

func (m *Manager) pauseLocked(ctx context.Context, e *entry) error {
	if e.rec.State == Paused {
		return fmt.Errorf("%w: sandbox %s is already paused", ErrConflict, e.rec.ID)
	}
	if err := e.box.Pause(); err != nil {
		return fmt.Errorf("pause sandbox %s: %w", e.rec.ID, err)
	}
	e.rec.State = Paused
	e.rec.Remaining = max(e.rec.EndAt.Sub(m.cfg.Now()), time.Second)
	m.arm(e)
	return m.save(ctx, e)
}

// Resume thaws a paused sandbox; its timeout restarts at timeout, or at
// what was left when it paused if timeout is 0.
func (m *Manager) Resume(ctx context.Context, team, id string, timeout time.Duration) (Info, error) {
	if timeout != 0 {
		if err := m.checkTimeout(timeout); err != nil {
			return Info{}, err
		}
	}
	e, err := m.lookup(team, id)
	if err != nil {
		return Info{}, err
	}
	defer e.mu.Unlock()
	if e.rec.State != Paused {
		return Info{}, fmt.Errorf("%w: sandbox %s is not paused", ErrConflict, id)
	}
	if err := m.resumeLocked(ctx, e, timeout); err != nil {
		return Info{}, err
	}
	return m.view(e), nil
}

func (m *Manager) resumeLocked(ctx context.Context, e *entry, timeout time.Duration) error {
	if err := e.box.Resume(); err != nil {
		return fmt.Errorf("resume sandbox %s: %w", e.rec.ID, err)
	}
	if timeout == 0 {
		timeout = e.rec.Remaining
	}
	e.rec.State = Running
	e.rec.Remaining = 0
	e.rec.EndAt = m.cfg.Now().Add(timeout).UTC()
	m.arm(e)
	return m.save(ctx, e)
}

// Connect returns a running sandbox, resuming it if paused (resumed
// reports which). The timeout only ever extends the sandbox's life.
func (m *Manager) Connect(ctx context.Context, team, id string, timeout time.Duration) (_ Info, resumed bool, _ error) {
	if timeout != 0 {
		if err := m.checkTimeout(timeout); err != nil {
			return Info{}, false, err
		}
	}
	e, err := m.lookup(team, id)
	if err != nil {
		return Info{}, false, err
	}
	defer e.mu.Unlock()
	if e.rec.State == Paused {
		if timeout == 0 || timeout < e.rec.Remaining {
			timeout = e.rec.Remaining
		}
		if err := m.resumeLocked(ctx, e, timeout); err != nil {
			return Info{}, false, err
		}
		return m.view(e), true, nil
	}
	if end := m.cfg.Now().Add(timeout); timeout != 0 && end.After(e.rec.EndAt) {
		e.rec.EndAt = end.UTC()
		m.arm(e)
		if err := m.save(ctx, e); err != nil {
			return Info{}, false, err
		}
	}
	return m.view(e), false, nil
}

// SetEgress replaces the egress rules of a sandbox created with egress.
func (m *Manager) SetEgress(ctx context.Context, team, id string, r netsetup.Rules) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	e, err := m.lookup(team, id)
	if err != nil {
		return err
	}
	defer e.mu.Unlock()
	if e.rec.Egress == nil {
		return fmt.Errorf("%w: sandbox %s was created without network egress (create it with allow_internet_access or network rules)", ErrConflict, id)
	}
	if err := e.box.SetEgress(r); err != nil {
		return fmt.Errorf("update network of sandbox %s: %w", id, err)
	}
	e.rec.Egress = &r
	return m.save(ctx, e)
}

// Filter selects sandboxes in List.
type Filter struct {
	Metadata map[string]string // all must match
	States   []State           // any; empty means all
}

// List returns the team's sandboxes matching f, newest first, at most
// limit of them after the one named by token; next is the token of the
// following page ("" on the last).
func (m *Manager) List(team string, f Filter, limit int, token string) (page []Info, next string, _ error) {
	m.mu.Lock()
	all := slices.Collect(maps.Values(m.entries))
	m.mu.Unlock()
	var out []Info
	for _, e := range all {
		e.mu.Lock()
		if !e.gone && e.rec.Team == team && f.match(e.rec.Info) {
			out = append(out, m.view(e))
		}
		e.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Info) int {
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	start := 0
	if token != "" {
		at, id, err := decodeToken(token)
		if err != nil {
			return nil, "", err
		}
		// The first entry strictly after the token's position.
		start = len(out)
		for i, in := range out {
			if c := at.Compare(in.StartedAt); c > 0 || (c == 0 && in.ID > id) {
				start = i
				break
			}
		}
	}
	out = out[start:]
	if limit > 0 && len(out) > limit {
		last := out[limit-1]
		return out[:limit], encodeToken(last.StartedAt, last.ID), nil
	}
	return out, "", nil
}

func (f Filter) match(in Info) bool {
	for k, v := range f.Metadata {
		if got, ok := in.Metadata[k]; !ok || got != v {
			return false
		}
	}
	return len(f.States) == 0 || slices.Contains(f.States, in.State)
}

func encodeToken(at time.Time, id string) string {
	return at.UTC().Format(time.RFC3339Nano) + "." + id
}

func decodeToken(tok string) (time.Time, string, error) {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return time.Time{}, "", fmt.Errorf("%w: bad nextToken", ErrInvalid)
	}
	at, err := time.Parse(time.RFC3339Nano, tok[:i])
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: bad nextToken", ErrInvalid)
	}
	return at, tok[i+1:], nil
}

// Usage reads a sandbox's resource use.
func (m *Manager) Usage(team, id string) (runtime.Usage, Info, error) {
	e, err := m.lookup(team, id)
	if err != nil {
		return runtime.Usage{}, Info{}, err
	}
	box, in := e.box, m.view(e)
	e.mu.Unlock()
	u, err := box.Usage()
	return u, in, err
}

// Target is what the data plane needs to reach a sandbox's agent.
type Target struct {
	ID                 string
	Box                Box
	AccessToken        string
	TrafficAccessToken string // "" when the sandbox's ports are public
	State              State
	Template           string
}

// Target finds a live sandbox by id alone, for the data plane, which
// authenticates with the sandbox's access token instead of an API key.
func (m *Manager) Target(id string) (Target, bool) {
	e := m.entry(id)
	if e == nil {
		return Target{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone {
		return Target{}, false
	}
	return e.target(), true
}

func (e *entry) target() Target {
	return Target{ID: e.rec.ID, Box: e.box, AccessToken: e.rec.AccessToken, TrafficAccessToken: e.rec.TrafficAccessToken, State: e.rec.State, Template: e.rec.Template}
}

// Targets returns every live sandbox, of every team (for signed file URLs
// that name no sandbox: the one whose token made the signature serves).
func (m *Manager) Targets() []Target {
	m.mu.Lock()
	all := slices.Collect(maps.Values(m.entries))
	m.mu.Unlock()
	out := make([]Target, 0, len(all))
	for _, e := range all {
		e.mu.Lock()
		if !e.gone {
			out = append(out, e.target())
		}
		e.mu.Unlock()
	}
	return out
}

// Count returns the number of live sandboxes.
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

// Close stops every timer and leaves the sandboxes running; it kills the
// warm pool's sandboxes, which nobody owns yet.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	all := slices.Collect(maps.Values(m.entries))
	p := m.pool
	m.pool = nil
	m.mu.Unlock()
	if p != nil {
		p.close()
	}
	for _, e := range all {
		e.mu.Lock()
		e.gone = true // also silences watch
		if e.timer != nil {
			e.timer.Stop()
		}
		e.mu.Unlock()
	}
}
