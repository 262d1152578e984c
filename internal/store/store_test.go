package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/soulbox-dev/soulbox/internal/auth"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSchemaMigratesOnceAndRefusesNewer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("database file mode %v, %v; want 0600", fi.Mode(), err)
	}
	s.Close()
	s = open(t, dir) // reopening runs no migration twice
	if _, err := s.db.Exec(`PRAGMA user_version = 999`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(ctx, dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("opening a newer schema: %v, want a clear refusal", err)
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir)
	key, rec, err := s.CreateAPIKey(ctx, "ci", "", auth.PrefixE2B)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "e2b_") || rec.Team != rec.ID || !strings.HasPrefix(key, strings.TrimSuffix(rec.Hint, "…")) {
		t.Fatalf("key %q record %+v", key, rec)
	}
	got, err := s.AuthenticateAPIKey(ctx, key)
	if err != nil || got.ID != rec.ID {
		t.Fatalf("authenticate: %+v, %v", got, err)
	}
	for _, bad := range []string{"", "nonsense", key + "0", "e2b_" + strings.Repeat("0", 40)} {
		if _, err := s.AuthenticateAPIKey(ctx, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("authenticate(%q) = %v, want ErrUnauthorized", bad, err)
		}
	}
	// The key is never stored in clear.
	raw, _ := os.ReadFile(filepath.Join(dir, FileName))
	wal, _ := os.ReadFile(filepath.Join(dir, FileName+"-wal"))
	if strings.Contains(string(raw)+string(wal), key[4:]) {
		t.Error("the key's secret appears in the database files")
	}
	// Persisted across reopen, then revoked.
	s.Close()
	s = open(t, dir)
	if err := s.RevokeAPIKey(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, rec.ID); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := s.AuthenticateAPIKey(ctx, key); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("revoked key authenticated: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke unknown: %v, want ErrNotFound", err)
	}
	keys, err := s.ListAPIKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].RevokedAt == nil || keys[0].Name != "ci" {
		t.Fatalf("list: %+v, %v", keys, err)
	}
}

// Several processes (the daemon and `soulbox apikey`) share the file;
// concurrent writers must all succeed.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := open(t, dir), open(t, dir)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 20; i++ {
		for _, s := range []*Store{a, b} {
			wg.Add(1)
			go func(s *Store) {
				defer wg.Done()
				_, _, err := s.CreateAPIKey(ctx, "k", "team", auth.PrefixSoulBox)
				errs <- err
			}(s)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := a.ListAPIKeys(ctx)
	if len(keys) != 40 {
		t.Fatalf("%d keys, want 40", len(keys))
	}
}

func TestSandboxRecords(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.PutSandbox(ctx, SandboxRecord{ID: "a", Team: "t1", Record: []byte(`{"v":1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSandbox(ctx, SandboxRecord{ID: "a", Team: "t1", Record: []byte(`{"v":2}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSandbox(ctx, SandboxRecord{ID: "b", Team: "t2", Record: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	all, err := s.ListSandboxes(ctx)
	if err != nil || len(all) != 2 || string(all[0].Record) != `{"v":2}` || all[1].Team != "t2" {
		t.Fatalf("ListSandboxes = %+v, %v", all, err)
	}
	if err := s.DeleteSandbox(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSandbox(ctx, "a"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if all, _ := s.ListSandboxes(ctx); len(all) != 1 || all[0].ID != "b" {
		t.Fatalf("after delete: %+v", all)
	}
}
