package filesystem

import (
	"errors"
	"io/fs"
	"net/http"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
)

// Errors the service returns besides the kernel's; codeOf maps them all.
var (
	errNotDir       = errors.New("not a directory")
	errIsDir        = errors.New("is a directory")
	errNotRegular   = errors.New("not a regular file")
	errRemoveRoot   = errors.New("refusing to remove /")
	errTooMany      = errors.New("too many entries")
	errTooLarge     = errors.New("upload exceeds the size limit")
	errUnknownUser  = errors.New("unknown user")
	errBadRequest   = errors.New("bad request")
	errNoSuchWatch  = errors.New("no such watcher")
	errTooManyWatch = errors.New("too many watchers")
)

// codeOf is the one place errors become Connect codes (and, through
// statusOf, HTTP statuses). Messages keep the sandbox path, which is all
// the tenant ever sees; the agent has no view of host paths.
func codeOf(err error) connect.Code {
	var errno unix.Errno
	switch {
	case errors.Is(err, errInvalidPath), errors.Is(err, errNotDir), errors.Is(err, errIsDir),
		errors.Is(err, errNotRegular), errors.Is(err, errBadRequest):
		return connect.CodeInvalidArgument
	case errors.Is(err, errUnknownUser):
		return connect.CodeUnauthenticated
	case errors.Is(err, errNoSuchWatch):
		return connect.CodeNotFound
	case errors.Is(err, errTooMany), errors.Is(err, errTooManyWatch), errors.Is(err, errTooLarge):
		return connect.CodeResourceExhausted
	case errors.Is(err, errRemoveRoot), errors.Is(err, errIdentity):
		return connect.CodePermissionDenied
	case errors.Is(err, fs.ErrNotExist):
		return connect.CodeNotFound
	case errors.Is(err, fs.ErrExist):
		return connect.CodeAlreadyExists
	case errors.Is(err, fs.ErrPermission):
		return connect.CodePermissionDenied
	case errors.As(err, &errno):
		switch errno {
		case unix.ENOTDIR, unix.EISDIR, unix.ENAMETOOLONG, unix.ELOOP, unix.EINVAL:
			return connect.CodeInvalidArgument
		case unix.ENOSPC, unix.EDQUOT, unix.EFBIG, unix.ENOMEM, unix.EMFILE, unix.ENFILE:
			return connect.CodeResourceExhausted
		case unix.EXDEV, unix.ENOTEMPTY, unix.EBUSY, unix.EROFS, unix.ETXTBSY:
			return connect.CodeFailedPrecondition
		}
	}
	return connect.CodeInternal
}

// connectError wraps err with its Connect code.
func connectError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	return connect.NewError(codeOf(err), err)
}

// statusOf maps an error to the HTTP status of the /files API.
func statusOf(err error) int {
	var errno unix.Errno
	if errors.As(err, &errno) {
		switch errno {
		case unix.ENOSPC, unix.EDQUOT, unix.EFBIG:
			return http.StatusInsufficientStorage
		}
	}
	if errors.Is(err, errTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	switch codeOf(err) {
	case connect.CodeInvalidArgument:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists:
		return http.StatusConflict
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeFailedPrecondition:
		return http.StatusConflict
	case connect.CodeResourceExhausted:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}
