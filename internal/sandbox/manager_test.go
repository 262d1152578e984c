package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/soulbox-dev/soulbox/internal/image"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/runtime"
	"github.com/soulbox-dev/soulbox/internal/store"
)

// fakeBox and fakeRuntime stand in for the kernel-level runtime so the
// state machine (timers, pause clock, teams, pagination, recovery) is
// tested without root; the real runtime is tested end to end in test/.
type fakeBox struct {
	h      runtime.Handle
	mu     sync.Mutex
	paused bool
	killed int
	env    map[string]string
	limits *limits.Limits
	done   chan struct{}
	once   sync.Once
}

func (b *fakeBox) Handle() runtime.Handle { return b.h }
func (b *fakeBox) Pause() error           { b.mu.Lock(); b.paused = true; b.mu.Unlock(); return nil }
func (b *fakeBox) Resume() error          { b.mu.Lock(); b.paused = false; b.mu.Unlock(); return nil }
func (b *fakeBox) Kill() error {
	b.mu.Lock()
	b.killed++
	b.mu.Unlock()
	b.die()
	return nil
}
func (b *fakeBox) SetLimits(l limits.Limits) error {
	b.mu.Lock()
	b.limits = &l
	b.mu.Unlock()
	return nil
}
func (b *fakeBox) SetEnv(_ context.Context, env map[string]string) error {
	b.mu.Lock()
	b.env = env
	b.mu.Unlock()
	return nil
}
func (b *fakeBox) die()                                   { b.once.Do(func() { close(b.done) }) }
func (b *fakeBox) Done() <-chan struct{}                  { return b.done }
func (b *fakeBox) Usage() (runtime.Usage, error)          { return runtime.Usage{}, nil }
func (b *fakeBox) Dial(context.Context) (net.Conn, error) { return nil, errors.New("fake") }
func (b *fakeBox) HTTPClient(bool) *http.Client           { return nil }
func (b *fakeBox) PortTransport() http.RoundTripper       { return nil }
func (b *fakeBox) UnstallCPU() (bool, bool, error)        { return false, false, nil }
func (b *fakeBox) AgentLog() string                       { return "" }
func (b *fakeBox) DialPort(context.Context, int) (net.Conn, error) {
	return nil, errors.New("no ports")
}
func (b *fakeBox) SetEgress(netsetup.Rules) error               { return nil }
func (b *fakeBox) isPaused() bool                               { b.mu.Lock(); defer b.mu.Unlock(); return b.paused }
func (b *fakeBox) killCount() int                               { b.mu.Lock(); defer b.mu.Unlock(); return b.killed }
func (r *fakeRuntime) LiveSandboxes() ([]runtime.Handle, error) { return r.live, nil }

type fakeRuntime struct {
	mu        sync.Mutex
	n         int
	boxes     map[string]*fakeBox
	adoptable map[string]bool
	live      []runtime.Handle
	destroyed []string
	specs     []runtime.Spec
}

func newFakeRuntime() *fakeRuntime {
	return &fakeRuntime{boxes: map[string]*fakeBox{}, adoptable: map[string]bool{}}
}

func (r *fakeRuntime) Start(_ context.Context, s runtime.Spec) (Box, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	id := fmt.Sprintf("box%03d", r.n)
	b := &fakeBox{h: runtime.Handle{ID: id, Slot: r.n, Pid: 1000 + r.n}, done: make(chan struct{})}
	r.boxes[id] = b
	r.specs = append(r.specs, s)
	return b, nil
}

func (r *fakeRuntime) Adopt(h runtime.Handle) (Box, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.adoptable[h.ID] {
		return nil, runtime.ErrGone
	}
	b := &fakeBox{h: h, done: make(chan struct{})}
	r.boxes[h.ID] = b
	return b, nil
}

func (r *fakeRuntime) Destroy(_ context.Context, h runtime.Handle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.destroyed = append(r.destroyed, h.ID)
	return nil
}

func (r *fakeRuntime) RemoveStaleDirs(func(string) bool) error { return nil }

func (r *fakeRuntime) box(id string) *fakeBox {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.boxes[id]
}

func newTestManager(t *testing.T, dir string, rt *fakeRuntime) (*Manager, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := New(Config{Runtime: rt, Store: st})
	t.Cleanup(m.Close)
	return m, st
}

func ptr[T any](v T) *T { return &v }

func TestCreateValidates(t *testing.T) {
	m, _ := newTestManager(t, t.TempDir(), newFakeRuntime())
	ctx := context.Background()
	bad := []CreateRequest{
		{Template: "ubuntu"},
		{Timeout: time.Millisecond},
		{Timeout: 48 * time.Hour},
		{Limits: LimitsRequest{MemoryBytes: ptr(int64(0))}},
		{Limits: LimitsRequest{MemoryBytes: ptr(int64(-1))}},
		{Limits: LimitsRequest{CPUs: ptr(0.0)}},
		{Limits: LimitsRequest{CPUs: ptr(1e9)}},
		{Limits: LimitsRequest{Pids: ptr(int64(0))}},
		{Limits: LimitsRequest{DiskBytes: ptr(int64(1))}},
		{Metadata: map[string]string{"": "x"}},
		{Env: map[string]string{"A=B": "x"}},
		{Env: map[string]string{"A": "x\x00y"}},
	}
	for i, r := range bad {
		r.Team = "t"
		if _, err := m.Create(ctx, r); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotFound) {
			t.Errorf("case %d (%+v): err = %v, want invalid or not found", i, r, err)
		}
	}
	if m.Count() != 0 {
		t.Fatalf("invalid requests created %d sandboxes", m.Count())
	}
	in, err := m.Create(ctx, CreateRequest{Team: "t", Env: map[string]string{"B": "2", "A": "1"}, Limits: LimitsRequest{CPUs: ptr(0.5)}})
	if err != nil {
		t.Fatal(err)
	}
	if in.State != Running || in.Template != "base" || in.Limits.CPUs != 0.5 || len(in.AccessToken) < 32 {
		t.Fatalf("created %+v", in)
	}
	if d := in.EndAt.Sub(in.StartedAt); d != 5*time.Minute {
		t.Fatalf("default timeout %s", d)
	}
}

func TestTeamsAreIsolated(t *testing.T) {
	m, _ := newTestManager(t, t.TempDir(), newFakeRuntime())
	ctx := context.Background()
	in, err := m.Create(ctx, CreateRequest{Team: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Get("b", in.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other team Get: %v", err)
	}
	if err := m.Kill(ctx, "b", in.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other team Kill: %v", err)
	}
	if err := m.Pause(ctx, "b", in.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other team Pause: %v", err)
	}
	if page, _, _ := m.List("b", Filter{}, 0, ""); len(page) != 0 {
		t.Fatalf("other team lists %d sandboxes", len(page))
	}
	if _, err := m.Get("a", in.ID); err != nil {
		t.Fatalf("own team Get: %v", err)
	}
}

func TestTimeoutKillsOrPauses(t *testing.T) {
	rt := newFakeRuntime()
	m, st := newTestManager(t, t.TempDir(), rt)
	ctx := context.Background()
	kill, err := m.Create(ctx, CreateRequest{Team: "t", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	pause, err := m.Create(ctx, CreateRequest{Team: "t", Timeout: time.Second, AutoPause: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return rt.box(kill.ID).killCount() == 1 && rt.box(pause.ID).isPaused() })
	if _, err := m.Get("t", kill.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired sandbox still there: %v", err)
	}
	in, err := m.Get("t", pause.ID)
	if err != nil || in.State != Paused {
		t.Fatalf("auto-paused sandbox: %+v, %v", in, err)
	}
	recs, _ := st.ListSandboxes(ctx)
	if len(recs) != 1 || recs[0].ID != pause.ID {
		t.Fatalf("records after expiry: %+v", recs)
	}
}

func TestPauseStopsTheClock(t *testing.T) {
	rt := newFakeRuntime()
	m, _ := newTestManager(t, t.TempDir(), rt)
	ctx := context.Background()
	in, err := m.Create(ctx, CreateRequest{Team: "t", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(ctx, "t", in.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Pause(ctx, "t", in.ID); !errors.Is(err, ErrConflict) {
		t.Fatalf("second pause: %v", err)
	}
	time.Sleep(2500 * time.Millisecond) // past the original deadline
	if b := rt.box(in.ID); b.killCount() != 0 || !b.isPaused() {
		t.Fatalf("paused sandbox expired (killed %d, paused %v)", b.killCount(), b.isPaused())
	}
	got, _, err := m.Connect(ctx, "t", in.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if left := time.Until(got.EndAt); left < time.Second || left > 2*time.Second {
		t.Fatalf("after resume %s left, want the ~2s left at pause", left)
	}
	if _, err := m.Resume(ctx, "t", in.ID, 0); !errors.Is(err, ErrConflict) {
		t.Fatalf("resume of a running sandbox: %v", err)
	}
	waitFor(t, 5*time.Second, func() bool { return rt.box(in.ID).killCount() == 1 })
}

func TestConnectOnlyExtends(t *testing.T) {
	m, _ := newTestManager(t, t.TempDir(), newFakeRuntime())
	ctx := context.Background()
	in, err := m.Create(ctx, CreateRequest{Team: "t", Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, resumed, err := m.Connect(ctx, "t", in.ID, time.Minute)
	if err != nil || resumed || !got.EndAt.Equal(in.EndAt) {
		t.Fatalf("connect shortened the timeout: %v -> %v (resumed %v, %v)", in.EndAt, got.EndAt, resumed, err)
	}
	got, _, _ = m.Connect(ctx, "t", in.ID, 2*time.Hour)
	if !got.EndAt.After(in.EndAt) {
		t.Fatalf("connect did not extend: %v", got.EndAt)
	}
	if err := m.SetTimeout(ctx, "t", in.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get("t", in.ID); time.Until(got.EndAt) > time.Minute {
		t.Fatalf("SetTimeout did not shorten: %v", got.EndAt)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	m, _ := newTestManager(t, t.TempDir(), newFakeRuntime())
	ctx := context.Background()
	var ids []string
	for i := range 7 {
		in, err := m.Create(ctx, CreateRequest{Team: "t", Metadata: map[string]string{"parity": fmt.Sprint(i % 2)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.ID)
	}
	if err := m.Pause(ctx, "t", ids[0]); err != nil {
		t.Fatal(err)
	}
	var seen []string
	token := ""
	for pages := 0; ; pages++ {
		page, next, err := m.List("t", Filter{}, 3, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range page {
			seen = append(seen, in.ID)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		token = next
	}
	slices.Sort(seen)
	if !slices.Equal(seen, ids) {
		t.Fatalf("pages gave %v, want each of %v once", seen, ids)
	}
	even, _, _ := m.List("t", Filter{Metadata: map[string]string{"parity": "0"}}, 0, "")
	if len(even) != 4 {
		t.Fatalf("metadata filter: %d", len(even))
	}
	paused, _, _ := m.List("t", Filter{States: []State{Paused}}, 0, "")
	if len(paused) != 1 || paused[0].ID != ids[0] {
		t.Fatalf("state filter: %+v", paused)
	}
	if _, _, err := m.List("t", Filter{}, 3, "garbage"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad token: %v", err)
	}
}

func TestRecover(t *testing.T) {
	dir := t.TempDir()
	rt := newFakeRuntime()
	m, _ := newTestManager(t, dir, rt)
	ctx := context.Background()
	alive, _ := m.Create(ctx, CreateRequest{Team: "t", Timeout: time.Hour})
	paused, _ := m.Create(ctx, CreateRequest{Team: "t", Timeout: time.Hour})
	dead, _ := m.Create(ctx, CreateRequest{Team: "t", Timeout: time.Hour})
	if err := m.Pause(ctx, "t", paused.ID); err != nil {
		t.Fatal(err)
	}
	m.Close() // the daemon stops; sandboxes stay

	rt2 := newFakeRuntime()
	rt2.adoptable[alive.ID], rt2.adoptable[paused.ID] = true, true
	rt2.live = []runtime.Handle{{ID: alive.ID}, {ID: paused.ID}, {ID: "orphan1", Slot: 9}}
	m2, st := newTestManager(t, dir, rt2)
	if err := m2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Get("t", alive.ID); err != nil || got.State != Running || got.AccessToken != alive.AccessToken {
		t.Fatalf("adopted sandbox: %+v, %v", got, err)
	}
	if got, err := m2.Get("t", paused.ID); err != nil || got.State != Paused {
		t.Fatalf("adopted paused sandbox: %+v, %v", got, err)
	}
	if _, err := m2.Get("t", dead.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("dead sandbox adopted: %v", err)
	}
	recs, _ := st.ListSandboxes(ctx)
	if len(recs) != 2 {
		t.Fatalf("records after recovery: %d", len(recs))
	}
	if !slices.Equal(rt2.destroyed, []string{"orphan1"}) {
		t.Fatalf("destroyed %v, want the orphan only", rt2.destroyed)
	}
	// A sandbox that dies on its own is forgotten.
	rt2.box(alive.ID).die()
	waitFor(t, 2*time.Second, func() bool { _, err := m2.Get("t", alive.ID); return errors.Is(err, ErrNotFound) })
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWarmPool(t *testing.T) {
	rt := newFakeRuntime()
	m, _ := newTestManager(t, t.TempDir(), rt)
	m.StartPool(2)
	started := func() int { rt.mu.Lock(); defer rt.mu.Unlock(); return rt.n }
	waitFor(t, 2*time.Second, func() bool { return started() == 2 })
	ctx := context.Background()
	// Default limits and an environment: a pooled sandbox, fitted.
	in, err := m.Create(ctx, CreateRequest{Team: "t", Env: map[string]string{"K": "v"}, Limits: LimitsRequest{MemoryBytes: ptr(int64(256 << 20))}})
	if err != nil {
		t.Fatal(err)
	}
	b := rt.box(in.ID)
	if b.h.Slot > 2 {
		t.Fatalf("sandbox %s was started cold", in.ID)
	}
	if b.env["K"] != "v" || b.limits == nil || b.limits.MemoryBytes != 256<<20 {
		t.Fatalf("pooled sandbox not fitted: env %v limits %+v", b.env, b.limits)
	}
	// The pool refills.
	waitFor(t, 2*time.Second, func() bool { return started() == 3 })
	// Another disk size cannot come from the pool.
	in2, err := m.Create(ctx, CreateRequest{Team: "t", Limits: LimitsRequest{DiskBytes: ptr(int64(64 << 20))}})
	if err != nil {
		t.Fatal(err)
	}
	if rt.box(in2.ID).h.Slot != 4 {
		t.Fatalf("sandbox with its own disk size came from the pool")
	}
	m.Close()
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("box%03d", i)
		if id == in.ID {
			continue
		}
		if rt.box(id).killCount() != 1 {
			t.Errorf("pooled sandbox %s not killed on Close", id)
		}
	}
	if b.killCount() != 0 || rt.box(in2.ID).killCount() != 0 {
		t.Error("Close killed owned sandboxes")
	}
}

// TestCreateFromImage: an imported template reaches the runtime by name;
// the warm pool (host sandboxes) is not used for it.
func TestCreateFromImage(t *testing.T) {
	images := image.Store{Dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(images.Dir, "tools", "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(images.Dir, "tools", "image.json"), []byte(`{"name":"tools"}`), 0o644)
	st, err := store.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rt := newFakeRuntime()
	m := New(Config{Runtime: rt, Store: st, Images: images})
	defer m.Close()
	ctx := context.Background()
	if _, err := m.Create(ctx, CreateRequest{Team: "t", Template: "nothing"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown template: %v, want ErrNotFound", err)
	}
	in, err := m.Create(ctx, CreateRequest{Team: "t", Template: "tools"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Template != "tools" || len(rt.specs) != 1 || rt.specs[0].Template != "tools" {
		t.Errorf("created %+v with specs %+v: want the template passed to the runtime", in, rt.specs)
	}
}
