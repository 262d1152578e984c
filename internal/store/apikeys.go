package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/soulbox-dev/soulbox/internal/auth"
)

// ErrUnauthorized is returned for a key that is unknown, malformed or revoked.
var ErrUnauthorized = errors.New("invalid or revoked API key")

// APIKey is a stored key; the key itself is never stored, only its hash.
type APIKey struct {
	ID        string
	Hint      string // e.g. "sb_3f9a1c…"
	Name      string
	Team      string // keys of one team see each other's sandboxes
	CreatedAt time.Time
	RevokedAt *time.Time
}

// CreateAPIKey generates a key with the given prefix (auth.PrefixSoulBox or
// auth.PrefixE2B), stores its hash and returns the key, shown only once.
// An empty team gives the key a team of its own.
func (s *Store) CreateAPIKey(ctx context.Context, name, team, prefix string) (string, APIKey, error) {
	key, err := auth.NewAPIKey(prefix)
	if err != nil {
		return "", APIKey{}, err
	}
	id, err := newID()
	if err != nil {
		return "", APIKey{}, err
	}
	if team == "" {
		team = id
	}
	rec := APIKey{ID: id, Hint: auth.Hint(key), Name: name, Team: team, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	_, err = s.db.ExecContext(ctx,
		`INSERT INTO api_keys (id, hash, hint, name, team, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		rec.ID, auth.HashAPIKey(key), rec.Hint, rec.Name, rec.Team, rec.CreatedAt.Unix())
	if err != nil {
		return "", APIKey{}, fmt.Errorf("store: create API key: %w", err)
	}
	return key, rec, nil
}

// ListAPIKeys returns every key, revoked ones included, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, hint, name, team, created_at, revoked_at FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list API keys: %w", err)
	}
	defer rows.Close()
	var keys []APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RevokeAPIKey revokes a key by id; revoking twice is not an error.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, time.Now().Unix(), id)
	if err != nil {
		return fmt.Errorf("store: revoke API key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("API key %q: %w", id, ErrNotFound)
	}
	return nil
}

// AuthenticateAPIKey returns the record of a valid, unrevoked key.
func (s *Store) AuthenticateAPIKey(ctx context.Context, key string) (APIKey, error) {
	if auth.CheckAPIKey(key) != nil {
		return APIKey{}, ErrUnauthorized
	}
	row := s.db.QueryRowContext(ctx,
		`SELECT id, hint, name, team, created_at, revoked_at FROM api_keys WHERE hash = ?`, auth.HashAPIKey(key))
	k, err := scanAPIKey(row)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && k.RevokedAt != nil) {
		return APIKey{}, ErrUnauthorized
	}
	return k, err
}

type scanner interface{ Scan(dest ...any) error }

func scanAPIKey(r scanner) (APIKey, error) {
	var (
		k       APIKey
		created int64
		revoked sql.NullInt64
	)
	if err := r.Scan(&k.ID, &k.Hint, &k.Name, &k.Team, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return APIKey{}, err
		}
		return APIKey{}, fmt.Errorf("store: read API key: %w", err)
	}
	k.CreatedAt = time.Unix(created, 0).UTC()
	if revoked.Valid {
		t := time.Unix(revoked.Int64, 0).UTC()
		k.RevokedAt = &t
	}
	return k, nil
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
