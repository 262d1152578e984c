package filesystem

import "github.com/soulbox-dev/soulbox/internal/fsid"

// User is whom a request acts as: the file system ids every operation
// runs with, and the directory relative paths resolve against.
type User struct {
	UID, GID uint32
	Home     string
}

// errIdentity means the agent could not take on a user's file system ids,
// which it needs CAP_SETUID and CAP_SETGID for.
var errIdentity = fsid.ErrIdentity

// asUser runs fn with the user's file system ids (see fsid.As), so the
// kernel checks permissions as that user and files fn creates belong to
// it. Access through groups is by the fsgid alone: the agent runs with no
// supplementary groups, so a user's secondary groups are not honoured.
func asUser(u User, fn func() error) error { return fsid.As(u.UID, u.GID, fn) }
