package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/judge"
	pb "github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1"
	"github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1/soulboxv1connect"
)

// codeService serves soulbox.v1.CodeService (api/proto/soulbox/v1/code.proto)
// in the gRPC, gRPC-Web and Connect protocols: execute_code and the judge,
// on the same code paths as their REST handlers (runExecute, runJudge,
// runJudgeBatch), after the same API-key check (rpcAuth).
type codeService struct{ s *Server }

var _ soulboxv1connect.CodeServiceHandler = codeService{}

type originKey struct{}

// codeServiceHandler returns the service's path prefix and handler.
func (s *Server) codeServiceHandler() (string, http.Handler) {
	path, h := soulboxv1connect.NewCodeServiceHandler(codeService{s},
		connect.WithReadMaxBytes(maxCodeBody))
	return path, s.rpcAuth(h)
}

// rpcAuth admits calls carrying a valid API key, as auth does for REST,
// answering others Unauthenticated in the caller's protocol; it passes on
// the key's team and the address the client used (for artifact URLs).
func (s *Server) rpcAuth(h http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		team, err := s.authenticate(r)
		if err != nil {
			ew.Write(w, r, s.rpcErr(err))
			return
		}
		ctx := context.WithValue(r.Context(), teamKey{}, team)
		ctx = context.WithValue(ctx, originKey{}, requestOrigin(r))
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (c codeService) Execute(ctx context.Context, req *connect.Request[pb.ExecuteRequest], stream *connect.ServerStream[pb.ExecuteEvent]) error {
	s, m := c.s, req.Msg
	if m.GetSandboxId() == "" {
		return s.rpcErr(fmt.Errorf("%w: sandbox_id is required", errBadRequest))
	}
	t, err := s.runningSandbox(teamFrom(ctx), m.GetSandboxId())
	if err != nil {
		return s.rpcErr(err)
	}
	r := execute.Request{Language: m.GetLanguage(), Code: m.GetCode(), Stdin: string(m.GetStdin()), Env: m.GetEnv()}
	if d := m.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil {
			return s.rpcErr(fmt.Errorf("%w: timeout: %v", errBadRequest, err))
		}
		r.Timeout = d.AsDuration().Seconds()
	}
	r.Template = t.Template
	if _, _, err := r.Validate(); err != nil {
		return s.rpcErr(err)
	}
	origin, _ := ctx.Value(originKey{}).(string)
	// emit may be called from the stdout and stderr readers at once.
	var mu sync.Mutex
	var sendErr error
	_, err = s.runExecute(ctx, t, origin, r, func(ev execute.Event) {
		mu.Lock()
		defer mu.Unlock()
		if sendErr != nil {
			return
		}
		var e *pb.ExecuteEvent
		if e, sendErr = executeEventPB(ev); e != nil && sendErr == nil {
			sendErr = stream.Send(e)
		}
	})
	if ctx.Err() != nil {
		return s.rpcErr(ctx.Err()) // the client went away or its deadline passed
	}
	if err != nil {
		return s.rpcErr(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		return s.rpcErr(sendErr)
	}
	return nil
}

func (c codeService) Judge(ctx context.Context, req *connect.Request[pb.JudgeRequest]) (*connect.Response[pb.JudgeReport], error) {
	rep, err := c.s.runJudge(ctx, judgeRequestOf(req.Msg))
	if err != nil {
		return nil, c.s.rpcErr(err)
	}
	return connect.NewResponse(judgeReportPB(rep)), nil
}

func (c codeService) JudgeBatch(ctx context.Context, req *connect.Request[pb.JudgeBatchRequest]) (*connect.Response[pb.JudgeBatchResponse], error) {
	subs := make([]judgeRequest, len(req.Msg.GetSubmissions()))
	for i, j := range req.Msg.GetSubmissions() {
		subs[i] = judgeRequestOf(j)
	}
	reps, err := c.s.runJudgeBatch(ctx, subs)
	if err != nil {
		return nil, c.s.rpcErr(err)
	}
	out := &pb.JudgeBatchResponse{Results: make([]*pb.JudgeReport, len(reps))}
	for i, r := range reps {
		out.Results[i] = judgeReportPB(r)
	}
	return connect.NewResponse(out), nil
}

// executeEventPB converts an event of the REST stream; nil for those the
// gRPC stream has no use for (end: the stream's own end is).
func executeEventPB(ev execute.Event) (*pb.ExecuteEvent, error) {
	switch {
	case ev.Type == "compile" && ev.Compile != nil:
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Compile{Compile: compilePB(ev.Compile)}}, nil
	case ev.Type == "stdout":
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Stdout{Stdout: []byte(ev.Text)}}, nil
	case ev.Type == "stderr":
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Stderr{Stderr: []byte(ev.Text)}}, nil
	case ev.Type == "artifact" && ev.Artifact != nil:
		a, err := artifactPB(ev.Artifact, true)
		if err != nil {
			return nil, err
		}
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Artifact{Artifact: a}}, nil
	case ev.Type == "result" && ev.Result != nil:
		r := ev.Result
		res := &pb.ExecuteResult{
			Language: r.Language, Status: r.Status, ExitCode: int32(r.ExitCode), Signal: validUTF8(r.Signal),
			TimeMs: r.TimeMS, Dir: r.Dir, Compile: compilePB(r.Compile),
		}
		for i := range r.Artifacts {
			a, err := artifactPB(&r.Artifacts[i], false)
			if err != nil {
				return nil, err
			}
			res.Artifacts = append(res.Artifacts, a)
		}
		return &pb.ExecuteEvent{Event: &pb.ExecuteEvent_Result{Result: res}}, nil
	}
	return nil, nil
}

func compilePB(c *execute.Compile) *pb.CompileReport {
	if c == nil {
		return nil
	}
	return &pb.CompileReport{Status: c.Status, Stdout: validUTF8(c.Stdout), Stderr: validUTF8(c.Stderr), TimeMs: c.TimeMS}
}

// artifactPB converts an artifact, its inline content decoded when
// withContent (the artifact event) and left out otherwise (the result).
func artifactPB(a *execute.Artifact, withContent bool) (*pb.Artifact, error) {
	out := &pb.Artifact{Path: validUTF8(a.Path), Name: validUTF8(a.Name), MimeType: validUTF8(a.MimeType), Size: a.Size}
	switch {
	case a.URL != "":
		out.Data = &pb.Artifact_Url{Url: a.URL}
	case withContent && a.Content != "":
		b, err := base64.StdEncoding.DecodeString(a.Content)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: %w", a.Name, err)
		}
		out.Data = &pb.Artifact_Content{Content: b}
	case withContent && a.Size == 0:
		out.Data = &pb.Artifact_Content{Content: []byte{}}
	}
	return out, nil
}

// judgeRequestOf turns a submission into the REST handler's terms, which
// prepareJudge checks.
func judgeRequestOf(j *pb.JudgeRequest) judgeRequest {
	out := judgeRequest{
		Language: j.GetLanguage(), Source: j.GetSource(), Limits: limitsOverrides(j.GetLimits()),
		Compare: j.GetCompare(), Parallel: int(j.GetParallel()), FreshSandboxes: j.GetFreshSandboxes(),
		Tests: make([]judgeCase, len(j.GetTests())),
	}
	for i, t := range j.GetTests() {
		out.Tests[i] = judgeCase{Name: t.GetName(), Stdin: string(t.GetStdin()), Expected: string(t.GetExpected()), Limits: limitsOverrides(t.GetLimits())}
	}
	if it := j.GetInteractor(); it != nil {
		out.Interactor = &interactorRequest{Language: it.GetLanguage(), Source: it.GetSource(), Limits: limitsOverrides(it.GetLimits())}
	}
	return out
}

// limitsOverrides is a limits map in the REST body's form (nil when empty).
func limitsOverrides(m map[string]string) json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return b
}

func judgeReportPB(r *judgeReport) *pb.JudgeReport {
	out := &pb.JudgeReport{Verdict: r.Verdict, Error: validUTF8(r.Error), Cases: make([]*pb.JudgeCaseResult, len(r.Cases))}
	if c := r.Compile; c != nil {
		out.Compile = &pb.CompileReport{Status: c.Status, Stdout: validUTF8(c.Stdout), Stderr: validUTF8(c.Stderr), TimeMs: c.TimeMS, Cached: c.Cached}
	}
	for i, c := range r.Cases {
		out.Cases[i] = caseResultPB(c)
	}
	return out
}

func caseResultPB(c judge.CaseResult) *pb.JudgeCaseResult {
	out := &pb.JudgeCaseResult{
		Name: validUTF8(c.Name), Verdict: c.Verdict, Status: c.Status, ExitCode: int32(c.ExitCode),
		TimeMs: c.TimeMS, WallMs: c.WallMS, MemoryBytes: c.MemoryBytes, Stderr: validUTF8(c.Stderr),
	}
	if r := c.Interactor; r != nil {
		out.Interactor = &pb.InteractorRun{Status: r.Status, ExitCode: int32(r.ExitCode), TimeMs: r.TimeMS,
			WallMs: r.WallMS, MemoryBytes: r.MemoryBytes, Stderr: validUTF8(r.Stderr)}
	}
	return out
}

// validUTF8 replaces what protobuf strings cannot carry (bytes that are
// not UTF-8, in compiler output or file names) as encoding/json does for
// the REST answers.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
