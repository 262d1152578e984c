package execute

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/soulbox-dev/soulbox/internal/lang"
)

// Request is one execution of a program on a live sandbox.
type Request struct {
	Language string            `json:"language"`
	Code     string            `json:"code"`
	Stdin    string            `json:"stdin,omitempty"`
	Timeout  float64           `json:"timeout,omitempty"` // seconds of the run step; 0: DefaultTimeout
	Env      map[string]string `json:"env,omitempty"`
	// Template is the sandbox's template (set by the server, not the
	// client): a language that needs a template runs only in it.
	Template string `json:"-"`
}

// Limits of an execution; the zero value takes the defaults.
type Options struct {
	// InlineMax: artifacts up to this size come back inline (base64);
	// larger ones as a signed download URL. Default 1 MiB.
	InlineMax int64
	// OutputMax caps stdout and stderr each; past it the run is killed
	// with status OLE. Default 8 MiB.
	OutputMax int
	// ArtifactMax caps the number of artifacts reported. Default 100.
	ArtifactMax int
	// Sign returns a download URL for a file of the sandbox; nil: large
	// artifacts come back without content or URL.
	Sign func(path string) string
}

// Defaults.
const (
	DefaultTimeout   = 60 * time.Second
	MaxTimeout       = time.Hour
	maxCodeBytes     = 8 << 20
	compileTimeout   = 120 * time.Second
	compileOutputMax = 1 << 20
	// WorkRoot holds the per-execution working directories.
	WorkRoot = "/tmp/soulbox/exec"
)

// Event is one line of an execution's stream.
type Event struct {
	Type     string    `json:"type"` // compile, stdout, stderr, artifact, result, end
	Text     string    `json:"text,omitempty"`
	Compile  *Compile  `json:"compile,omitempty"`
	Artifact *Artifact `json:"artifact,omitempty"`
	Result   *Result   `json:"result,omitempty"`
}

// Compile is the outcome of a compile step.
type Compile struct {
	Status string  `json:"status"` // OK, CE, TLE
	Stdout string  `json:"stdout,omitempty"`
	Stderr string  `json:"stderr,omitempty"`
	TimeMS float64 `json:"time_ms"`
}

// Artifact is a file the run created or modified in its working directory.
type Artifact struct {
	Path     string `json:"path"` // absolute, in the sandbox
	Name     string `json:"name"` // relative to the working directory
	MimeType string `json:"mime_type"`
	Size     int64  `json:"size"`
	Content  string `json:"content,omitempty"` // base64, when at most InlineMax
	URL      string `json:"url,omitempty"`     // signed download URL, when larger
}

// Result is the outcome of an execution.
type Result struct {
	Language string  `json:"language"`
	Status   string  `json:"status"` // OK, RE, TLE, OLE, CE
	ExitCode int     `json:"exit_code"`
	Signal   string  `json:"signal,omitempty"`
	TimeMS   float64 `json:"time_ms"`
	Dir      string  `json:"dir"`
	// Stdout and Stderr are set in the single-JSON answer only (the
	// stream carries them as events).
	Stdout    string     `json:"stdout,omitempty"`
	Stderr    string     `json:"stderr,omitempty"`
	Compile   *Compile   `json:"compile,omitempty"`
	Artifacts []Artifact `json:"artifacts"`
}

// ErrBadRequest marks a request that cannot run as asked.
var ErrBadRequest = errors.New("bad execute request")

func (o *Options) defaults() {
	if o.InlineMax <= 0 {
		o.InlineMax = 1 << 20
	}
	if o.OutputMax <= 0 {
		o.OutputMax = 8 << 20
	}
	if o.ArtifactMax <= 0 {
		o.ArtifactMax = 100
	}
}

// Validate checks a request and returns its language and timeout.
func (r *Request) Validate() (*lang.Language, time.Duration, error) {
	l, ok := lang.Lookup(r.Language)
	if !ok {
		return nil, 0, fmt.Errorf("%w: unknown language %q (known: %s)", ErrBadRequest, r.Language, strings.Join(lang.Names(), ", "))
	}
	if l.Template != "" && l.Template != r.Template {
		return nil, 0, fmt.Errorf("%w: %s runs in sandboxes of the %s template (this one is of %q): %s", ErrBadRequest, l.Name, l.Template, r.Template, l.Note)
	}
	if len(r.Code) > maxCodeBytes {
		return nil, 0, fmt.Errorf("%w: code over %d bytes", ErrBadRequest, maxCodeBytes)
	}
	if len(r.Stdin) > maxCodeBytes {
		return nil, 0, fmt.Errorf("%w: stdin over %d bytes", ErrBadRequest, maxCodeBytes)
	}
	d := DefaultTimeout
	if r.Timeout < 0 || r.Timeout > MaxTimeout.Seconds() {
		return nil, 0, fmt.Errorf("%w: timeout must be 0-%d seconds", ErrBadRequest, int(MaxTimeout.Seconds()))
	}
	if r.Timeout > 0 {
		d = time.Duration(r.Timeout * float64(time.Second))
	}
	for k := range r.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, 0, fmt.Errorf("%w: bad environment variable name %q", ErrBadRequest, k)
		}
	}
	return l, d, nil
}

// Execute runs req on the sandbox behind a: the source is written into a
// fresh working directory, compiled if the language has a compile step,
// and run; emit receives the events in order, the result last.
func Execute(ctx context.Context, a *Agent, req Request, o Options, emit func(Event)) (*Result, error) {
	o.defaults()
	l, timeout, err := req.Validate()
	if err != nil {
		return nil, err
	}
	dir := path.Join(WorkRoot, newID())
	if err := a.MakeDir(ctx, dir); err != nil {
		return nil, err
	}
	if err := a.WriteFile(ctx, path.Join(dir, l.Source), []byte(req.Code)); err != nil {
		return nil, err
	}
	res := &Result{Language: l.Name, Dir: dir, Artifacts: []Artifact{}}
	if l.Compiled() {
		for name, body := range l.Extra {
			if err := a.WriteFile(ctx, path.Join(dir, name), []byte(body)); err != nil {
				return nil, err
			}
		}
		c, err := compile(ctx, a, l, dir, req.Env)
		if err != nil {
			return nil, err
		}
		res.Compile = c
		emit(Event{Type: "compile", Compile: c})
		if c.Status != "OK" {
			res.Status = "CE"
			emit(Event{Type: "result", Result: res})
			return res, nil
		}
	}
	before, err := a.snapshot(ctx, dir, snapshotDepth)
	if err != nil {
		return nil, err
	}
	var stdin []byte
	if req.Stdin != "" {
		stdin = []byte(req.Stdin)
	}
	var nout, nerr int
	var outOver bool
	end, err := a.run(ctx, procSpec{
		argv: l.Run, env: envMap(l.RunEnv(), req.Env), cwd: dir, stdin: stdin, timeout: timeout,
		out: func(stderr bool, b []byte) bool {
			n := &nout
			typ := "stdout"
			if stderr {
				n, typ = &nerr, "stderr"
			}
			if *n+len(b) > o.OutputMax {
				b = b[:o.OutputMax-*n]
				outOver = true
			}
			*n += len(b)
			if len(b) > 0 {
				emit(Event{Type: typ, Text: string(b)})
			}
			return !outOver
		},
	})
	if err != nil {
		return nil, err
	}
	res.ExitCode, res.TimeMS = end.exitCode, ms(end.wall)
	switch {
	case end.timedOut:
		res.Status = "TLE"
	case end.capped:
		res.Status = "OLE"
	case end.exited && end.exitCode == 0:
		res.Status = "OK"
	default:
		res.Status = "RE"
		if !end.exited {
			res.Signal = strings.TrimPrefix(end.status, "signal: ")
		}
	}
	after, err := a.snapshot(ctx, dir, snapshotDepth)
	if err != nil {
		return nil, err
	}
	arts, err := artifacts(ctx, a, dir, before, after, o)
	if err != nil {
		return nil, err
	}
	for i := range arts {
		emit(Event{Type: "artifact", Artifact: &arts[i]})
	}
	res.Artifacts = arts
	emit(Event{Type: "result", Result: res})
	return res, nil
}

// snapshotDepth is how deep artifacts are looked for.
const snapshotDepth = 4

func compile(ctx context.Context, a *Agent, l *lang.Language, dir string, env map[string]string) (*Compile, error) {
	var out, errb strings.Builder
	end, err := a.run(ctx, procSpec{
		argv: l.Compile, env: envMap(l.CompileEnv(), env), cwd: dir, timeout: compileTimeout,
		out: func(stderr bool, b []byte) bool {
			w := &out
			if stderr {
				w = &errb
			}
			if w.Len()+len(b) > compileOutputMax {
				return false
			}
			w.Write(b)
			return true
		},
	})
	if err != nil {
		return nil, err
	}
	c := &Compile{Status: "OK", Stdout: out.String(), Stderr: errb.String(), TimeMS: ms(end.wall)}
	switch {
	case end.timedOut:
		c.Status = "TLE"
	case end.capped:
		c.Status = "CE"
		c.Stderr += "\nsoulbox: the compiler's output is over the size cap\n"
	case !end.exited || end.exitCode != 0:
		c.Status = "CE"
	}
	return c, nil
}

// artifacts are the regular files new or changed between two snapshots.
func artifacts(ctx context.Context, a *Agent, dir string, before, after map[string]fileState, o Options) ([]Artifact, error) {
	var paths []string
	for p, st := range after {
		if old, ok := before[p]; ok && old == st {
			continue
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(paths) > o.ArtifactMax {
		paths = paths[:o.ArtifactMax]
	}
	out := []Artifact{}
	for _, p := range paths {
		st := after[p]
		art := Artifact{Path: p, Name: strings.TrimPrefix(p, dir+"/"), Size: st.size}
		if st.size <= o.InlineMax {
			b, err := a.ReadFile(ctx, p, o.InlineMax)
			if err != nil {
				continue // removed or grown since the listing
			}
			art.Size = int64(len(b))
			art.MimeType = lang.MimeType(p, b)
			art.Content = base64.StdEncoding.EncodeToString(b)
		} else {
			art.MimeType = lang.MimeType(p, nil)
			if o.Sign != nil {
				art.URL = o.Sign(p)
			}
		}
		out = append(out, art)
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
