package soulbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Sentinel errors. Every error the SDK returns for a failed request wraps
// one of them when it applies, so callers can branch with errors.Is without
// looking at HTTP statuses or Connect codes.
var (
	ErrNotFound = errors.New("not found")             // 404, Connect not_found
	ErrAuth     = errors.New("authentication failed") // 401/403, unauthenticated, permission_denied
	ErrTimeout  = errors.New("timed out")             // 408/504, deadline_exceeded, a command's timeout
	ErrConflict = errors.New("conflict")              // 409, already_exists, aborted, failed_precondition
	ErrInvalid  = errors.New("invalid argument")      // 400/422, invalid_argument, out_of_range
)

// errNoStream is a process stream that ended without the process's end.
var errNoStream = errors.New("stream ended without an end event")

// APIError is a request the daemon (or the sandbox's agent behind it)
// answered with an error. It wraps the matching sentinel (ErrNotFound, ...)
// and, for data-plane calls, the *connect.Error, so both errors.Is and
// errors.As work.
type APIError struct {
	Status  int    // HTTP status; for Connect calls the status equivalent of Code
	Code    string // Connect code name ("not_found"); empty for REST calls
	Message string // the server's message

	sentinel error
	cause    error
}

func (e *APIError) Error() string {
	what := strings.ReplaceAll(e.Code, "_", " ")
	if what == "" {
		what = fmt.Sprintf("%d %s", e.Status, strings.ToLower(http.StatusText(e.Status)))
	}
	if e.Message == "" {
		return what
	}
	return what + ": " + e.Message
}

// Unwrap returns the sentinel and the underlying transport error, if any.
func (e *APIError) Unwrap() []error {
	var errs []error
	if e.sentinel != nil {
		errs = append(errs, e.sentinel)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func sentinelForStatus(status int) error {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return ErrInvalid
	case http.StatusUnauthorized, http.StatusForbidden:
		return ErrAuth
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return ErrTimeout
	}
	return nil
}

// errorFromResponse reads an error response ({"code","message"} JSON, or
// plain text) into an *APIError. It consumes at most 64 KiB of the body.
func errorFromResponse(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	return &APIError{Status: resp.StatusCode, Message: msg, sentinel: sentinelForStatus(resp.StatusCode)}
}

// connectStatus is the HTTP status the Connect protocol pairs with a code.
var connectStatus = map[connect.Code]int{
	connect.CodeCanceled:           499,
	connect.CodeUnknown:            http.StatusInternalServerError,
	connect.CodeInvalidArgument:    http.StatusBadRequest,
	connect.CodeDeadlineExceeded:   http.StatusGatewayTimeout,
	connect.CodeNotFound:           http.StatusNotFound,
	connect.CodeAlreadyExists:      http.StatusConflict,
	connect.CodePermissionDenied:   http.StatusForbidden,
	connect.CodeResourceExhausted:  http.StatusTooManyRequests,
	connect.CodeFailedPrecondition: http.StatusBadRequest,
	connect.CodeAborted:            http.StatusConflict,
	connect.CodeOutOfRange:         http.StatusBadRequest,
	connect.CodeUnimplemented:      http.StatusNotImplemented,
	connect.CodeInternal:           http.StatusInternalServerError,
	connect.CodeUnavailable:        http.StatusServiceUnavailable,
	connect.CodeDataLoss:           http.StatusInternalServerError,
	connect.CodeUnauthenticated:    http.StatusUnauthorized,
}

func sentinelForCode(code connect.Code) error {
	switch code {
	case connect.CodeNotFound:
		return ErrNotFound
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		return ErrAuth
	case connect.CodeDeadlineExceeded:
		return ErrTimeout
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return ErrInvalid
	case connect.CodeAlreadyExists, connect.CodeAborted, connect.CodeFailedPrecondition:
		return ErrConflict
	}
	return nil
}

// rpcError turns an error from a generated Connect client into an
// *APIError. Errors of the caller's own context pass through unchanged
// (still wrapped, so errors.Is(err, context.Canceled) holds).
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return err
	}
	if ce.Code() == connect.CodeCanceled {
		return err
	}
	return &APIError{
		Status:   connectStatus[ce.Code()],
		Code:     ce.Code().String(),
		Message:  ce.Message(),
		sentinel: sentinelForCode(ce.Code()),
		cause:    err,
	}
}

// CommandExitError is returned by Commands.Run and CommandHandle.Wait
// when a command ends with a non-zero exit code (or is killed by a
// signal). Result holds everything the command printed.
type CommandExitError struct {
	Result *CommandResult
}

func (e *CommandExitError) Error() string {
	msg := fmt.Sprintf("command exited with code %d", e.Result.ExitCode)
	if e.Result.Error != "" {
		msg += ": " + e.Result.Error
	}
	return msg
}

// ExitCode is the command's exit code; -1 when a signal ended it.
func (e *CommandExitError) ExitCode() int { return e.Result.ExitCode }
