// Package store keeps SoulBox's persistent state in an embedded SQLite
// database (pure Go, no cgo) under the data directory, with a versioned
// schema migrated forward on open.
//
// A Store is safe for concurrent use by the goroutines of one process and
// by several processes on the same file (`soulbox apikey create` works
// while the daemon runs): SQLite's locking, WAL mode and a busy timeout
// serialise writers. Close releases the database.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the database's name inside the data directory.
const FileName = "state.db"

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// Store is the open database.
type Store struct {
	db *sql.DB
}

// migrations are applied in order; schema version N means the first N ran.
// Never edit an existing entry: append a new one.
var migrations = []string{
	// 1: API keys, stored as SHA-256 hashes of the key.
	`CREATE TABLE api_keys (
		id          TEXT PRIMARY KEY,
		hash        BLOB NOT NULL UNIQUE,
		hint        TEXT NOT NULL,
		name        TEXT NOT NULL,
		team        TEXT NOT NULL,
		created_at  INTEGER NOT NULL,
		revoked_at  INTEGER
	) STRICT`,
	// 2: live sandboxes; the sandbox manager owns the record's shape.
	`CREATE TABLE sandboxes (
		id          TEXT PRIMARY KEY,
		team        TEXT NOT NULL,
		record      TEXT NOT NULL
	) STRICT`,
}

// Open opens (creating if needed) the database in dataDir and migrates its
// schema. The file is readable by root only.
func Open(ctx context.Context, dataDir string) (*Store, error) {
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
		q.Add("_pragma", p)
	}
	// Immediate transactions take the write lock at BEGIN, so two
	// processes never interleave a read-then-write (e.g. migrations).
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// One connection: SQLite serialises writers anyway, and a pool would
	// keep a varying number of descriptors open.
	db.SetMaxOpenConns(1)
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: chmod %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// SchemaVersion reports how many migrations have been applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v)
	return v, err
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin migration: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return fmt.Errorf("store: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("store: database schema version %d is newer than this soulbox (%d): upgrade soulbox", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("store: migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return fmt.Errorf("store: set schema version: %w", err)
	}
	return tx.Commit()
}
