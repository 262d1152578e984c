package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/internal/store"
	pb "github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1"
	"github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1/soulboxv1connect"
)

// TestCodeOf: the gRPC codes follow the HTTP statuses, except for what
// only gRPC can say.
func TestCodeOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want connect.Code
	}{
		{store.ErrUnauthorized, connect.CodeUnauthenticated},
		{fmt.Errorf("%w: x", sandbox.ErrNotFound), connect.CodeNotFound},
		{fmt.Errorf("%w: paused", sandbox.ErrConflict), connect.CodeFailedPrecondition},
		{fmt.Errorf("%w: unknown language", execute.ErrBadRequest), connect.CodeInvalidArgument},
		{fmt.Errorf("%w: tests", errBadRequest), connect.CodeInvalidArgument},
		{fmt.Errorf("%w: judge", errUnsupported), connect.CodeUnimplemented},
		{fmt.Errorf("run: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
		{context.Canceled, connect.CodeCanceled},
		{&http.MaxBytesError{Limit: 1}, connect.CodeResourceExhausted},
		{errors.New("disk on fire"), connect.CodeInternal},
	} {
		if got := codeOf(c.err); got != c.want {
			t.Errorf("codeOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestCodeServiceNeedsKey: a call without an API key is refused
// Unauthenticated in each protocol, before anything else is looked at.
func TestCodeServiceNeedsKey(t *testing.T) {
	ts := httptest.NewUnstartedServer(New(Config{}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	for name, opt := range map[string]connect.ClientOption{
		"grpc": connect.WithGRPC(), "grpc-web": connect.WithGRPCWeb(), "connect": connect.WithProtoJSON(),
	} {
		c := soulboxv1connect.NewCodeServiceClient(ts.Client(), ts.URL, opt)
		_, err := c.Judge(context.Background(), connect.NewRequest(&pb.JudgeRequest{Language: "python"}))
		if got := connect.CodeOf(err); got != connect.CodeUnauthenticated {
			t.Errorf("%s: Judge without a key: %v (code %v), want unauthenticated", name, err, got)
		}
		s, err := c.Execute(context.Background(), connect.NewRequest(&pb.ExecuteRequest{SandboxId: "x"}))
		if err == nil {
			for s.Receive() {
				t.Errorf("%s: Execute without a key sent %v", name, s.Msg())
			}
			err = s.Err()
		}
		if got := connect.CodeOf(err); got != connect.CodeUnauthenticated {
			t.Errorf("%s: Execute without a key: %v (code %v), want unauthenticated", name, err, got)
		}
	}
}
