package store

import (
	"context"
	"fmt"
)

// SandboxRecord is the persistent record of a live sandbox. Record is the
// sandbox manager's own encoding (JSON); the store only keys it.
type SandboxRecord struct {
	ID     string
	Team   string
	Record []byte
}

// PutSandbox inserts or replaces a sandbox's record.
func (s *Store) PutSandbox(ctx context.Context, r SandboxRecord) error {
	_, err := s.db.ExecContext(ctx,
		`INSERT INTO sandboxes (id, team, record) VALUES (?, ?, ?)
		 ON CONFLICT (id) DO UPDATE SET team = excluded.team, record = excluded.record`,
		r.ID, r.Team, string(r.Record))
	if err != nil {
		return fmt.Errorf("store: save sandbox %s: %w", r.ID, err)
	}
	return nil
}

// DeleteSandbox removes a sandbox's record; removing a missing record is
// not an error.
func (s *Store) DeleteSandbox(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sandboxes WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete sandbox %s: %w", id, err)
	}
	return nil
}

// ListSandboxes returns every sandbox record.
func (s *Store) ListSandboxes(ctx context.Context) ([]SandboxRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, team, record FROM sandboxes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("store: list sandboxes: %w", err)
	}
	defer rows.Close()
	var out []SandboxRecord
	for rows.Next() {
		var (
			r   SandboxRecord
			rec string
		)
		if err := rows.Scan(&r.ID, &r.Team, &rec); err != nil {
			return nil, fmt.Errorf("store: read sandbox: %w", err)
		}
		r.Record = []byte(rec)
		out = append(out, r)
	}
	return out, rows.Err()
}
