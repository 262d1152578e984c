package soulbox

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"connectrpc.com/connect"
)

func TestRPCErrorMapping(t *testing.T) {
	cases := []struct {
		code   connect.Code
		want   error
		status int
	}{
		{connect.CodeNotFound, ErrNotFound, 404},
		{connect.CodeUnauthenticated, ErrAuth, 401},
		{connect.CodePermissionDenied, ErrAuth, 403},
		{connect.CodeDeadlineExceeded, ErrTimeout, 504},
		{connect.CodeInvalidArgument, ErrInvalid, 400},
		{connect.CodeAlreadyExists, ErrConflict, 409},
		{connect.CodeFailedPrecondition, ErrConflict, 400},
		{connect.CodeInternal, nil, 500},
	}
	for _, tc := range cases {
		t.Run(tc.code.String(), func(t *testing.T) {
			err := rpcError(connect.NewError(tc.code, errors.New("boom")))
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T, want *APIError", err)
			}
			if apiErr.Code != tc.code.String() || apiErr.Status != tc.status || apiErr.Message != "boom" {
				t.Errorf("APIError = %+v", apiErr)
			}
			for _, s := range []error{ErrNotFound, ErrAuth, ErrTimeout, ErrInvalid, ErrConflict} {
				if got := errors.Is(err, s); got != (s == tc.want) {
					t.Errorf("errors.Is(err, %v) = %v", s, got)
				}
			}
			var ce *connect.Error
			if !errors.As(err, &ce) {
				t.Error("the *connect.Error is not reachable with errors.As")
			}
		})
	}
	// The caller's own cancellation stays recognisable.
	err := rpcError(connect.NewError(connect.CodeCanceled, context.Canceled))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	if rpcError(nil) != nil {
		t.Error("rpcError(nil) != nil")
	}
	plain := fmt.Errorf("dial: %w", errors.New("refused"))
	if rpcError(plain) != plain {
		t.Error("a non-Connect error must pass through")
	}
}

func TestSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{0, 0}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {time.Hour, 3600}} {
		if got, err := seconds(tc.d); err != nil || got != tc.want {
			t.Errorf("seconds(%s) = %d, %v; want %d", tc.d, got, err, tc.want)
		}
	}
	if _, err := seconds(-time.Second); !errors.Is(err, ErrInvalid) {
		t.Errorf("negative: %v", err)
	}
}
