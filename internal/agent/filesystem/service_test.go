package filesystem

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
)

func TestMakeDirStatListMoveRemove(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	c := e.client

	// MakeDir creates parents, as the user.
	res, err := c.MakeDir(ctx, as("user", &pb.MakeDirRequest{Path: "a/b/c"}))
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(e.home, "a/b/c")
	if got := res.Msg.GetEntry(); got.GetPath() != want || got.GetName() != "c" || got.GetType() != pb.FileType_FILE_TYPE_DIRECTORY {
		t.Errorf("entry %+v, want directory %s", got, want)
	}
	for _, p := range []string{"a", "a/b", "a/b/c"} {
		if uid, gid := owner(t, filepath.Join(e.home, p)); uid != testUID || gid != testGID {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, uid, gid, testUID, testGID)
		}
	}
	_, err = c.MakeDir(ctx, as("user", &pb.MakeDirRequest{Path: "~/a/b/c"}))
	if got := connect.CodeOf(err); got != connect.CodeAlreadyExists {
		t.Errorf("MakeDir of an existing directory: %v, want already_exists", err)
	}

	if err := os.WriteFile(filepath.Join(e.home, "a/file1.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file1.txt", filepath.Join(e.home, "a/link")); err != nil {
		t.Fatal(err)
	}

	// Stat does not follow a final link and reports its target.
	st, err := c.Stat(ctx, as("", &pb.StatRequest{Path: "a/link"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Msg.GetEntry(); got.GetType() != pb.FileType_FILE_TYPE_SYMLINK || got.GetSymlinkTarget() != filepath.Join(e.home, "a/file1.txt") {
		t.Errorf("stat link: %+v", got)
	}
	st, err = c.Stat(ctx, as("user", &pb.StatRequest{Path: "a/file1.txt"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Msg.GetEntry(); got.GetSize() != 5 || got.GetMode() != 0o644 || got.GetPermissions() != "-rw-r--r--" || got.GetOwner() != "root" || got.GetModifiedTime() == nil {
		t.Errorf("stat file: %+v", got)
	}
	if _, err := c.Stat(ctx, as("user", &pb.StatRequest{Path: "missing"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("stat missing: %v, want not_found", err)
	}

	// ListDir: depth 1 by default, depth first in name order.
	for _, tc := range []struct {
		depth uint32
		want  []string
	}{
		{0, []string{"a/b", "a/file1.txt", "a/link"}},
		{1, []string{"a/b", "a/file1.txt", "a/link"}},
		{2, []string{"a/b", "a/b/c", "a/file1.txt", "a/link"}},
		{100, []string{"a/b", "a/b/c", "a/file1.txt", "a/link"}},
	} {
		ls, err := c.ListDir(ctx, as("user", &pb.ListDirRequest{Path: "a", Depth: tc.depth}))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, en := range ls.Msg.GetEntries() {
			rel, _ := filepath.Rel(e.home, en.GetPath())
			got = append(got, rel)
			if en.GetName() != filepath.Base(en.GetPath()) {
				t.Errorf("entry name %q, path %q", en.GetName(), en.GetPath())
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("depth %d: %v, want %v", tc.depth, got, tc.want)
		}
	}
	if _, err := c.ListDir(ctx, as("user", &pb.ListDirRequest{Path: "a/file1.txt"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("list a file: %v, want invalid_argument", err)
	}
	if _, err := c.ListDir(ctx, as("user", &pb.ListDirRequest{Path: "nope"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("list missing: %v, want not_found", err)
	}

	// Move creates the destination's parents.
	mv, err := c.Move(ctx, as("user", &pb.MoveRequest{Source: "a/b", Destination: "x/y/moved"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := mv.Msg.GetEntry().GetPath(); got != filepath.Join(e.home, "x/y/moved") {
		t.Errorf("moved to %s", got)
	}
	if _, err := os.Stat(filepath.Join(e.home, "x/y/moved/c")); err != nil {
		t.Errorf("after move: %v", err)
	}
	if _, err := c.Move(ctx, as("user", &pb.MoveRequest{Source: "gone", Destination: "z"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("move missing: %v, want not_found", err)
	}

	// Remove is recursive; a missing path is fine; "/" is refused.
	if _, err := c.Remove(ctx, as("user", &pb.RemoveRequest{Path: "x"})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.home, "x")); !os.IsNotExist(err) {
		t.Errorf("after remove: %v", err)
	}
	if _, err := c.Remove(ctx, as("user", &pb.RemoveRequest{Path: "x"})); err != nil {
		t.Errorf("remove missing: %v", err)
	}
	if _, err := c.Remove(ctx, as("root", &pb.RemoveRequest{Path: "/.."})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("remove /: %v, want permission_denied", err)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	for _, p := range []string{"a\x00b", "~root/x", string(make([]byte, 5000))} {
		if _, err := e.client.Stat(ctx, as("user", &pb.StatRequest{Path: p})); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("stat %.20q: %v, want invalid_argument", p, err)
		}
	}
	if _, err := e.client.Stat(ctx, as("nobody-here", &pb.StatRequest{Path: "/"})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("unknown user: %v, want unauthenticated", err)
	}
}

// The kernel checks permissions as the user: a root-owned 0755 directory
// is not writable, and files the user creates are the user's.
func TestActsAsUser(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	locked := filepath.Join(e.home, "locked")
	if err := os.Mkdir(locked, 0o755); err != nil { // owned by root
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(locked, "f"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	for _, op := range []func() error{
		func() error {
			_, err := e.client.MakeDir(ctx, as("user", &pb.MakeDirRequest{Path: "locked/d"}))
			return err
		},
		func() error {
			_, err := e.client.Move(ctx, as("user", &pb.MoveRequest{Source: "locked/f", Destination: "f"}))
			return err
		},
		func() error {
			_, err := e.client.Remove(ctx, as("user", &pb.RemoveRequest{Path: "locked"}))
			return err
		},
	} {
		if err := op(); connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Errorf("got %v, want permission_denied", err)
		}
	}
	secret := filepath.Join(e.home, "secret")
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ListDir(ctx, as("user", &pb.ListDirRequest{Path: "secret"})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("list a root-only directory: %v, want permission_denied", err)
	}
	// As root (fsuid 0) the same works, and the test's thread is unaffected.
	if _, err := e.client.MakeDir(ctx, as("root", &pb.MakeDirRequest{Path: "home/locked/d"})); err != nil {
		t.Fatal(err)
	}
	if uid, _ := owner(t, filepath.Join(locked, "d")); uid != 0 {
		t.Errorf("created as root, owned by %d", uid)
	}
	if _, err := e.client.MakeDir(ctx, as("user", &pb.MakeDirRequest{Path: "mine"})); err != nil {
		t.Fatal(err)
	}
	if uid, gid := owner(t, filepath.Join(e.home, "mine")); uid != testUID || gid != testGID {
		t.Errorf("owned by %d:%d, want %d:%d", uid, gid, testUID, testGID)
	}
}

// A FIFO in a listing is described, never opened.
func TestListAndStatDoNotOpenFIFOs(t *testing.T) {
	e := newEnv(t, Config{})
	fifo := filepath.Join(e.home, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.client.ListDir(ctx, as("user", &pb.ListDirRequest{Path: ""})); err != nil {
		t.Fatal(err)
	}
	st, err := e.client.Stat(ctx, as("user", &pb.StatRequest{Path: "fifo"}))
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Msg.GetEntry(); got.GetType() != pb.FileType_FILE_TYPE_UNSPECIFIED || got.GetPermissions()[0] != 'p' {
		t.Errorf("fifo entry %+v", got)
	}
	if _, err := e.client.ListDir(ctx, as("user", &pb.ListDirRequest{Path: "fifo"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("list a fifo: %v, want invalid_argument", err)
	}
}

func TestListDirEntryCap(t *testing.T) {
	e := newEnv(t, Config{MaxListEntries: 10})
	for i := range 11 {
		if err := os.WriteFile(filepath.Join(e.home, string(rune('a'+i))), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.client.ListDir(context.Background(), as("user", &pb.ListDirRequest{Path: "~"}))
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Errorf("listing 11 entries with a cap of 10: %v, want resource_exhausted", err)
	}
}
