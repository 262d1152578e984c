package test

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
	pb "github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1"
	"github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1/soulboxv1connect"
)

// h2cClient speaks HTTP/2 without TLS, as gRPC needs on an http:// URL.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}

// codeService is the SDK's CodeService client for key over hc.
func codeService(t *testing.T, url, key string, hc *http.Client, opts ...connect.ClientOption) soulboxv1connect.CodeServiceClient {
	t.Helper()
	c, err := soulbox.NewClient(soulbox.WithURL(url), soulbox.WithAPIKey(key), soulbox.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	return c.CodeService(opts...)
}

// timedEvent is an event and when it arrived.
type timedEvent struct {
	ev *pb.ExecuteEvent
	at time.Time
}

// executeRPC calls Execute and collects its events, or its error.
func executeRPC(ctx context.Context, c soulboxv1connect.CodeServiceClient, req *pb.ExecuteRequest) ([]timedEvent, error) {
	s, err := c.Execute(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var evs []timedEvent
	for s.Receive() {
		evs = append(evs, timedEvent{s.Msg(), time.Now()})
	}
	return evs, s.Err()
}

// TestCodeServiceGRPC: execute_code on a live sandbox and the judge over
// gRPC (h2c, the daemon's one port), through the SDK's generated client:
// streamed output and result, a compile error, verdicts, and the codes of
// refusals.
func TestCodeServiceGRPC(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	other := newAPIKey(t, dir) // a team of its own
	d := startDaemon(t, dir)
	hc := h2cClient()
	code := codeService(t, d.url, key, hc, connect.WithGRPC())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sbx, err := sdkClient(t, d, key).Create(ctx, soulbox.CreateOptions{Timeout: 10 * time.Minute, Limits: soulbox.Limits{MemoryMB: 1024, DiskSizeMB: 2048}})
	if err != nil {
		t.Fatal(err)
	}
	defer sbx.Kill(context.Background())

	t.Run("python streams stdout, then its result", func(t *testing.T) {
		src := "import sys, time\n" +
			"print(input().upper(), flush=True)\n" +
			"print('oops', file=sys.stderr, flush=True)\n" +
			"time.sleep(1.5)\n" +
			"open('out.txt', 'w').write('data')\n" +
			"print('done')\n" +
			"sys.exit(3)\n"
		evs, err := executeRPC(ctx, code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: src,
			Stdin: []byte("hello\n"), Timeout: durationpb.New(30 * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr strings.Builder
		var first time.Time
		var arts []*pb.Artifact
		for i, e := range evs {
			switch ev := e.ev.Event.(type) {
			case *pb.ExecuteEvent_Stdout:
				if first.IsZero() {
					first = e.at
				}
				stdout.Write(ev.Stdout)
			case *pb.ExecuteEvent_Stderr:
				stderr.Write(ev.Stderr)
			case *pb.ExecuteEvent_Artifact:
				arts = append(arts, ev.Artifact)
			case *pb.ExecuteEvent_Compile:
				t.Errorf("compile event for python: %v", ev)
			case *pb.ExecuteEvent_Result:
				if i != len(evs)-1 {
					t.Errorf("result is event %d of %d, want the last", i+1, len(evs))
				}
			}
		}
		if got, want := stdout.String(), "HELLO\ndone\n"; got != want {
			t.Errorf("stdout %q, want %q", got, want)
		}
		if got, want := stderr.String(), "oops\n"; got != want {
			t.Errorf("stderr %q, want %q", got, want)
		}
		last := evs[len(evs)-1]
		res := last.ev.GetResult()
		if res == nil {
			t.Fatalf("last event %v, want the result", last.ev)
		}
		// The first line arrived while the program slept, not with the end.
		if gap := last.at.Sub(first); gap < time.Second {
			t.Errorf("first stdout %v before the result, want the output streamed as it came", gap)
		}
		if res.Status != "RE" || res.ExitCode != 3 || res.Language != "python" || res.Compile != nil || !strings.HasPrefix(res.Dir, "/tmp/soulbox/exec/") {
			t.Errorf("result %v, want RE, exit code 3", res)
		}
		if len(arts) != 1 || arts[0].Name != "out.txt" || string(arts[0].GetContent()) != "data" || arts[0].Size != 4 {
			t.Errorf("artifact events %v, want out.txt with its content", arts)
		}
		if len(res.Artifacts) != 1 || res.Artifacts[0].Name != "out.txt" || res.Artifacts[0].GetContent() != nil {
			t.Errorf("result's artifacts %v, want out.txt without content", res.Artifacts)
		}
	})

	t.Run("c compile error is CE", func(t *testing.T) {
		evs, err := executeRPC(ctx, code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "c", Code: "int main( {\n"})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 2 {
			t.Fatalf("%d events %v, want compile and result", len(evs), evs)
		}
		c, res := evs[0].ev.GetCompile(), evs[1].ev.GetResult()
		if c == nil || c.Status != "CE" || c.Stderr == "" {
			t.Errorf("compile event %v, want CE with the compiler's errors", evs[0].ev)
		}
		if res == nil || res.Status != "CE" || res.Compile.GetStatus() != "CE" {
			t.Errorf("result %v, want CE", evs[1].ev)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			client soulboxv1connect.CodeServiceClient
			req    *pb.ExecuteRequest
			want   connect.Code
		}{
			{"no API key", codeService(t, d.url, "", hc, connect.WithGRPC()),
				&pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(1)"}, connect.CodeUnauthenticated},
			{"unknown API key", codeService(t, d.url, "sb_"+strings.Repeat("0", 40), hc, connect.WithGRPC()),
				&pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(1)"}, connect.CodeUnauthenticated},
			{"another team's sandbox", codeService(t, d.url, other, hc, connect.WithGRPC()),
				&pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(1)"}, connect.CodeNotFound},
			{"no such sandbox", code, &pb.ExecuteRequest{SandboxId: "nosuchsandbox", Language: "python", Code: "print(1)"}, connect.CodeNotFound},
			{"no sandbox id", code, &pb.ExecuteRequest{Language: "python", Code: "print(1)"}, connect.CodeInvalidArgument},
			{"unknown language", code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "cobol", Code: "x"}, connect.CodeInvalidArgument},
			{"timeout over an hour", code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(1)",
				Timeout: durationpb.New(2 * time.Hour)}, connect.CodeInvalidArgument},
			{"bad environment name", code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(1)",
				Env: map[string]string{"A=B": "c"}}, connect.CodeInvalidArgument},
		} {
			evs, err := executeRPC(ctx, c.client, c.req)
			if got := connect.CodeOf(err); err == nil || got != c.want {
				t.Errorf("%s: %d events, error %v (code %v), want %v", c.name, len(evs), err, got, c.want)
			}
			if len(evs) != 0 {
				t.Errorf("%s: %d events before the refusal", c.name, len(evs))
			}
		}
	})

	t.Run("paused sandbox is FailedPrecondition", func(t *testing.T) {
		if err := sbx.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := executeRPC(ctx, code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(1)"})
		if got := connect.CodeOf(err); err == nil || got != connect.CodeFailedPrecondition {
			t.Errorf("error %v (code %v), want failed_precondition", err, got)
		}
		if err := sbx.Resume(ctx, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		evs, err := executeRPC(ctx, code, &pb.ExecuteRequest{SandboxId: sbx.ID, Language: "python", Code: "print(6*7)"})
		if err != nil || len(evs) != 2 || string(evs[0].ev.GetStdout()) != "42\n" || evs[1].ev.GetResult().GetStatus() != "OK" {
			t.Errorf("after resume: %v, %v", evs, err)
		}
	})

	t.Run("judge AC and WA", func(t *testing.T) {
		tests := []*pb.JudgeTest{{Name: "small", Stdin: []byte("5\n"), Expected: []byte("120\n")}, {Stdin: []byte("10\n"), Expected: []byte("3628800\n")}}
		lim := map[string]string{"memory": "64MB", "timeout": "2s"}
		fact := "#include <iostream>\nint main(){long n,f=1;std::cin>>n;for(long i=2;i<=n;i++)f*=i;std::cout<<f<<\"\\n\";}\n"
		rep, err := code.Judge(ctx, connect.NewRequest(&pb.JudgeRequest{Language: "cpp", Source: fact, Tests: tests, Limits: lim}))
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Msg
		if r.Verdict != "AC" || len(r.Cases) != 2 || r.Compile.GetStatus() != "OK" || r.Cases[0].Name != "small" || r.Cases[1].Name != "2" {
			t.Errorf("report %v, want AC with two cases and a compile report", r)
		}
		rep, err = code.Judge(ctx, connect.NewRequest(&pb.JudgeRequest{Language: "python", Source: "print(int(input()) and 120)", Tests: tests, Limits: lim, Compare: "tokens"}))
		if err != nil {
			t.Fatal(err)
		}
		if r := rep.Msg; r.Verdict != "WA" || len(r.Cases) != 2 || r.Cases[0].Verdict != "AC" || r.Cases[1].Verdict != "WA" {
			t.Errorf("report %v, want WA (case 2)", r)
		}
		// An interactive problem: the guessing game of interactive_test.go.
		rep, err = code.Judge(ctx, connect.NewRequest(&pb.JudgeRequest{Language: "python", Source: guessSubmission,
			Tests:      []*pb.JudgeTest{{Stdin: []byte("37\n"), Expected: []byte("37\n")}},
			Interactor: &pb.Interactor{Language: "python", Source: guessInteractor, Limits: map[string]string{"timeout": "10s"}}}))
		if err != nil {
			t.Fatal(err)
		}
		if r := rep.Msg; r.Verdict != "AC" || len(r.Cases) != 1 || r.Cases[0].GetInteractor().GetStatus() != "OK" {
			t.Errorf("interactive report %v, want AC with the interactor's run", r)
		}
		batch, err := code.JudgeBatch(ctx, connect.NewRequest(&pb.JudgeBatchRequest{Submissions: []*pb.JudgeRequest{
			{Language: "python", Source: "print(120)", Tests: tests[:1], Limits: lim},
			{Language: "cpp", Source: "int main( {}\n", Tests: tests, Limits: lim},
			{Language: "cobol", Source: "x", Tests: tests},
		}}))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range batch.Msg.Results {
			got = append(got, r.Verdict)
		}
		if strings.Join(got, ",") != "AC,CE," || batch.Msg.Results[2].Error == "" {
			t.Errorf("batch verdicts %q, want AC,CE and an error for the last: %v", got, batch.Msg.Results)
		}
	})

	t.Run("judge refusals", func(t *testing.T) {
		tests := []*pb.JudgeTest{{Stdin: []byte("1\n"), Expected: []byte("1\n")}}
		for _, c := range []struct {
			name   string
			client soulboxv1connect.CodeServiceClient
			req    *pb.JudgeRequest
			want   connect.Code
		}{
			{"no API key", codeService(t, d.url, "", hc, connect.WithGRPC()), &pb.JudgeRequest{Language: "python", Source: "print(1)", Tests: tests}, connect.CodeUnauthenticated},
			{"unknown language", code, &pb.JudgeRequest{Language: "cobol", Source: "x", Tests: tests}, connect.CodeInvalidArgument},
			{"no tests", code, &pb.JudgeRequest{Language: "python", Source: "print(1)"}, connect.CodeInvalidArgument},
			{"bad limits", code, &pb.JudgeRequest{Language: "python", Source: "print(1)", Tests: tests, Limits: map[string]string{"memory": "lots"}}, connect.CodeInvalidArgument},
			{"bad comparator", code, &pb.JudgeRequest{Language: "python", Source: "print(1)", Tests: tests, Compare: "fuzzy"}, connect.CodeInvalidArgument},
		} {
			_, err := c.client.Judge(ctx, connect.NewRequest(c.req))
			if got := connect.CodeOf(err); err == nil || got != c.want {
				t.Errorf("%s: error %v (code %v), want %v", c.name, err, got, c.want)
			}
		}
		_, err := code.JudgeBatch(ctx, connect.NewRequest(&pb.JudgeBatchRequest{}))
		if got := connect.CodeOf(err); err == nil || got != connect.CodeInvalidArgument {
			t.Errorf("empty batch: error %v (code %v), want invalid_argument", err, got)
		}
	})
}

// TestCodeServiceProtocolsTLS: with TLS the one port serves CodeService in
// gRPC, gRPC-Web and Connect, authenticated as over h2c.
func TestCodeServiceProtocolsTLS(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir)
	certFile, keyFile, pool := selfSignedCert(t)
	d := startDaemon(t, dir, "--tls-cert", certFile, "--tls-key", keyFile)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, opt := range map[string]connect.ClientOption{
		"grpc": connect.WithGRPC(), "grpc-web": connect.WithGRPCWeb(), "connect": connect.WithProtoJSON(),
	} {
		for _, c := range []struct {
			key  string
			want connect.Code
		}{{"", connect.CodeUnauthenticated}, {key, connect.CodeNotFound}} {
			_, err := executeRPC(ctx, codeService(t, d.url, c.key, hc, opt), &pb.ExecuteRequest{SandboxId: "nosuchsandbox", Language: "python", Code: "print(1)"})
			if got := connect.CodeOf(err); got != c.want {
				t.Errorf("%s, key %q: error %v (code %v), want %v", name, c.key, err, got, c.want)
			}
		}
	}
}
