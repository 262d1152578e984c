package lang

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/soulbox-dev/soulbox/internal/limits"
	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

// Request is one execution: source in a language, run once.
type Request struct {
	Lang    *Language
	Source  []byte
	Limits  limits.Limits
	Stdin   io.Reader
	Stdout  io.Writer // optional live copies of the output
	Stderr  io.Writer
	Collect sbrt.Collect // caps on the files returned as artifacts
}

// Outcome is what an execution produced. Result is nil when the program
// did not compile (Compile.Status is not OK).
type Outcome struct {
	Lang    *Language
	Compile *CompileReport
	Result  *sbrt.Result
}

// Execute prepares the source and runs it once, collecting the files it
// creates or modifies in its working directory.
func (e *Executor) Execute(ctx context.Context, req Request) (*Outcome, error) {
	p, err := e.Prepare(ctx, req.Lang, req.Source)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Lang: req.Lang, Compile: p.Compile}
	if !p.OK() {
		return out, nil
	}
	spec := p.Spec(req.Limits, req.Stdin)
	spec.Stdout, spec.Stderr = req.Stdout, req.Stderr
	c := req.Collect
	spec.Collect = &c
	res, err := e.Runner.Run(ctx, spec)
	if err != nil {
		return nil, err
	}
	out.Result = res
	return out, nil
}

// mimeByExt covers the common outputs of programs; anything else is
// sniffed from its content.
var mimeByExt = map[string]string{
	".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
	".svg": "image/svg+xml", ".webp": "image/webp", ".pdf": "application/pdf",
	".csv": "text/csv", ".tsv": "text/tab-separated-values", ".json": "application/json",
	".txt": "text/plain; charset=utf-8", ".md": "text/markdown", ".html": "text/html; charset=utf-8",
	".xml": "application/xml", ".zip": "application/zip", ".gz": "application/gzip",
	".parquet": "application/vnd.apache.parquet", ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

// MimeType names a file's media type from its extension, else its content.
func MimeType(name string, data []byte) string {
	if t, ok := mimeByExt[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	if data == nil {
		return "application/octet-stream"
	}
	return http.DetectContentType(data)
}

// Info is a language as `soulbox languages` lists it.
type Info struct {
	Name      string   `json:"name"`
	Title     string   `json:"title"`
	Aliases   []string `json:"aliases,omitempty"`
	Compiled  bool     `json:"compiled"`
	Available bool     `json:"available"`
	Version   string   `json:"version,omitempty"`
	Hint      string   `json:"hint,omitempty"`
	Note      string   `json:"note,omitempty"`
	Template  string   `json:"template,omitempty"` // the template it runs in; "" is host
	// The steps, run in /home/user where the source is Source.
	Source   string   `json:"source"`
	Compile  []string `json:"compile,omitempty"`
	Run      []string `json:"run"`
	JudgeRun []string `json:"judge_run,omitempty"` // the judge's run step, when not Run
}

// Probe reports every language: available or not, and the version its
// version command prints when run in a sandbox (what programs will see).
// The version commands run in parallel, at most two at a time.
func (e *Executor) Probe(ctx context.Context) []Info {
	langs := All()
	infos := make([]Info, len(langs))
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for i, l := range langs {
		st := e.Status(l)
		infos[i] = Info{Name: l.Name, Title: l.Title, Aliases: l.Aliases, Compiled: l.Compiled(), Available: st.Available, Hint: st.Hint, Note: l.Note, Template: l.Template,
			Source: l.Source, Compile: l.Compile, Run: l.Run, JudgeRun: l.JudgeRun}
		if !st.Available {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			lim := DefaultCompileLimits()
			lim.WallTime = limits.Defaults().WallTime
			env := append(append(append([]string{}, commonEnv...), l.Env...), compileEnv...)
			res, err := e.Runner.Run(ctx, sbrt.Spec{Argv: l.Version, Env: env, Limits: lim, Template: l.Template})
			switch {
			case err != nil:
				infos[i].Available = false
				infos[i].Hint = "the version command could not run: " + err.Error()
			case res.Status != sbrt.StatusOK:
				infos[i].Available = false
				infos[i].Hint = "the version command failed (" + string(res.Status) + "): " + firstLine(append(res.Stderr, res.Stdout...))
			default:
				infos[i].Version = firstLine(append(res.Stdout, res.Stderr...))
			}
		}()
	}
	wg.Wait()
	return infos
}

func firstLine(b []byte) string {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if s := strings.TrimSpace(string(line)); s != "" {
			return s
		}
	}
	return ""
}
