package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/internal/codeinterp"
	"github.com/soulbox-dev/soulbox/internal/execute"
	"github.com/soulbox-dev/soulbox/internal/judge"
	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/netsetup"
	"github.com/soulbox-dev/soulbox/internal/sandbox"
	"github.com/soulbox-dev/soulbox/internal/store"
)

// apiError is the body of every error answer, in E2B's shape: the SDKs
// read "code" (404: not found, 409: conflict) and show "message".
type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, apiError{Code: status, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// statusOf maps an error to its HTTP status: the one place where
// internal errors become status codes.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, store.ErrUnauthorized), errors.Is(err, errUnauthorized), errors.Is(err, codeinterp.ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, execute.ErrContextNotFound), errors.Is(err, codeinterp.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, sandbox.ErrConflict), errors.Is(err, execute.ErrKernelDead), errors.Is(err, execute.ErrTooManyContexts):
		return http.StatusConflict
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, errUpgradeRequired):
		return http.StatusUpgradeRequired
	case errors.Is(err, netsetup.ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, sandbox.ErrInvalid), errors.Is(err, limits.ErrInvalid), errors.Is(err, errBadRequest),
		errors.Is(err, errUnsupported), errors.Is(err, execute.ErrBadRequest), errors.Is(err, codeinterp.ErrBadRequest),
		errors.Is(err, judge.ErrInteractor):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

// codeOf maps an error to its gRPC/Connect code: Unimplemented for what
// SoulBox does not provide, a cancelled or timed-out call as such, and
// otherwise the code of statusOf's HTTP status, so both wires agree.
func codeOf(err error) connect.Code {
	switch {
	case errors.Is(err, errUnsupported):
		return connect.CodeUnimplemented
	case errors.Is(err, context.Canceled):
		return connect.CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return connect.CodeDeadlineExceeded
	}
	switch statusOf(err) {
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusNotFound:
		return connect.CodeNotFound
	case http.StatusConflict:
		return connect.CodeFailedPrecondition
	case http.StatusRequestEntityTooLarge:
		return connect.CodeResourceExhausted
	case http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	case http.StatusBadRequest:
		return connect.CodeInvalidArgument
	default:
		return connect.CodeInternal
	}
}

var (
	errBadRequest   = errors.New("bad request")
	errUnauthorized = errors.New("unauthorized")
	// errUpgradeRequired is a plain request to a WebSocket endpoint.
	errUpgradeRequired = errors.New("upgrade required")
	// errUnsupported is an E2B feature SoulBox does not provide; the SDKs
	// show 400 answers as InvalidArgumentError.
	errUnsupported = errors.New("not supported by SoulBox")
)

// writeErr answers with err's status; internal errors are logged and
// answered without their details' being lost to the operator.
func (s *Server) writeErr(w http.ResponseWriter, err error) {
	status := statusOf(err)
	if status >= 500 {
		s.log.Error("request failed", "err", err)
	}
	writeError(w, status, err.Error())
}

// rpcErr is writeErr for gRPC and Connect: err with its code, internal
// errors logged.
func (s *Server) rpcErr(err error) *connect.Error {
	code := codeOf(err)
	if code == connect.CodeInternal {
		s.log.Error("request failed", "err", err)
	}
	return connect.NewError(code, err)
}
