package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Recover adopts the sandboxes recorded by an earlier daemon and cleans
// what is left: records whose sandbox is gone are deleted, live sandboxes
// without a record are destroyed, and directories of dead sandboxes are
// removed. A sandbox whose timeout passed while no daemon ran expires at
// once. Call it once, before serving.
func (m *Manager) Recover(ctx context.Context) error {
	recs, err := m.cfg.Store.ListSandboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, sr := range recs {
		var rec Record
		if err := json.Unmarshal(sr.Record, &rec); err != nil || rec.ID != sr.ID {
			m.log.Error("dropping unreadable sandbox record", "sandbox", sr.ID, "err", err)
			errs = append(errs, m.cfg.Store.DeleteSandbox(ctx, sr.ID))
			continue
		}
		box, err := m.cfg.Runtime.Adopt(rec.Handle)
		if err != nil {
			m.log.Info("sandbox did not survive; dropping its record", "sandbox", rec.ID, "reason", err)
			errs = append(errs, m.cfg.Store.DeleteSandbox(ctx, rec.ID))
			continue
		}
		if rec.Egress != nil && len(rec.Egress.Domains) > 0 {
			// Its domain filter lived in the previous daemon: start one
			// here (until then its DNS and web traffic fail closed).
			if err := box.SetEgress(*rec.Egress); err != nil {
				m.log.Error("restore the domain filter of an adopted sandbox", "sandbox", rec.ID, "err", err)
			}
		}
		e := &entry{rec: rec, box: box}
		m.mu.Lock()
		m.entries[rec.ID] = e
		m.mu.Unlock()
		e.mu.Lock()
		m.arm(e) // a passed deadline fires at once
		e.mu.Unlock()
		go m.watch(e)
		m.log.Info("adopted sandbox", "sandbox", rec.ID, "state", rec.State)
	}
	live, err := m.cfg.Runtime.LiveSandboxes()
	if err != nil {
		errs = append(errs, fmt.Errorf("list live sandboxes: %w", err))
	}
	for _, h := range live {
		if m.entry(h.ID) != nil {
			continue
		}
		m.log.Warn("destroying a sandbox without a record", "sandbox", h.ID)
		if err := m.cfg.Runtime.Destroy(ctx, h); err != nil {
			errs = append(errs, fmt.Errorf("destroy orphan sandbox %s: %w", h.ID, err))
		}
	}
	errs = append(errs, m.cfg.Runtime.RemoveStaleDirs(func(id string) bool { return m.entry(id) != nil }))
	return errors.Join(errs...)
}
