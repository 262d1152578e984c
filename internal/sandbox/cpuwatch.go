package sandbox

import (
	"context"
	"maps"
	"slices"
	"time"
)

// CPUWatchInterval is how often WatchCPU checks the sandboxes.
const CPUWatchInterval = 2 * time.Second

// WatchCPU checks every running sandbox each interval for tasks that CFS
// throttling stranded (see runtime.Sandbox.UnstallCPU) and releases them,
// until ctx ends.
func (m *Manager) WatchCPU(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		all := slices.Collect(maps.Values(m.entries))
		m.mu.Unlock()
		for _, e := range all {
			e.mu.Lock()
			live := !e.gone && e.rec.State == Running
			e.mu.Unlock()
			if !live {
				continue
			}
			stalled, rewritten, err := e.box.UnstallCPU()
			switch {
			case err != nil:
				m.log.Debug("CPU throttling check", "sandbox", e.rec.ID, "err", err)
			case stalled:
				m.log.Info("CPU quota rewritten: the throttled sandbox made no progress", "sandbox", e.rec.ID)
			case rewritten:
				m.log.Debug("CPU quota rewritten: the sandbox keeps being throttled", "sandbox", e.rec.ID)
			}
		}
	}
}
