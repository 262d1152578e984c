package api

import (
	"math"
	"net/http"
	"sync"
	"time"
)

// metricJSON is E2B's SandboxMetric.
type metricJSON struct {
	Timestamp     time.Time `json:"timestamp"`
	TimestampUnix int64     `json:"timestampUnix"`
	CPUCount      int       `json:"cpuCount"`
	CPUUsedPct    float64   `json:"cpuUsedPct"`
	MemUsed       int64     `json:"memUsed"`
	MemTotal      int64     `json:"memTotal"`
	MemCache      int64     `json:"memCache"`
	DiskUsed      int64     `json:"diskUsed"`
	DiskTotal     int64     `json:"diskTotal"`
	// SoulBox's extension: traffic of a sandbox with egress, from its
	// host veth's counters (absent without egress).
	NetBytesIn    *uint64 `json:"netBytesIn,omitempty"`
	NetBytesOut   *uint64 `json:"netBytesOut,omitempty"`
	NetPacketsIn  *uint64 `json:"netPacketsIn,omitempty"`
	NetPacketsOut *uint64 `json:"netPacketsOut,omitempty"`
}

// cpuSampler remembers each sandbox's previous CPU reading, so a metrics
// call reports the CPU use since the previous call (or since the start).
type cpuSampler struct {
	mu     sync.Mutex
	last   map[string]cpuSample
	alive  func(id string) bool // whether a sandbox still exists
	pruned int                  // entries left by the last prune
}

type cpuSample struct {
	at  time.Time
	cpu time.Duration
}

func (c *cpuSampler) percent(id string, now time.Time, cpu time.Duration, since time.Time, cores float64) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	prev, ok := c.last[id]
	if !ok || cpu < prev.cpu {
		prev = cpuSample{at: since}
	}
	c.last[id] = cpuSample{at: now, cpu: cpu}
	if len(c.last) > 2*c.pruned+64 {
		// Forget sandboxes that are gone, so the map does not grow with
		// every sandbox ever measured.
		for k := range c.last {
			if c.alive != nil && !c.alive(k) {
				delete(c.last, k)
			}
		}
		c.pruned = len(c.last)
	}
	wall := now.Sub(prev.at)
	if wall <= 0 || cores <= 0 {
		return 0
	}
	pct := 100 * float64(cpu-prev.cpu) / float64(wall) / cores
	return math.Round(math.Min(math.Max(pct, 0), 100)*100) / 100
}

// sandboxMetrics answers with one current sample (SoulBox keeps no
// history of metrics).
func (s *Server) sandboxMetrics(w http.ResponseWriter, r *http.Request) {
	u, in, err := s.cfg.Manager.Usage(teamOf(r), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	now := s.cfg.Now()
	cores := in.Limits.CPUs
	m := metricJSON{
		Timestamp: now.UTC(), TimestampUnix: now.Unix(),
		CPUCount:   int(math.Ceil(cores)),
		CPUUsedPct: s.metrics.percent(in.ID, now, u.CPUUsage, in.StartedAt, cores),
		MemUsed:    u.MemoryCurrent, MemTotal: in.Limits.MemoryBytes, MemCache: u.MemoryCache,
		DiskUsed: u.DiskUsed, DiskTotal: u.DiskTotal,
	}
	if n := u.Network; n != nil {
		m.NetBytesIn, m.NetBytesOut = &n.BytesIn, &n.BytesOut
		m.NetPacketsIn, m.NetPacketsOut = &n.PacketsIn, &n.PacketsOut
	}
	writeJSON(w, http.StatusOK, []metricJSON{m})
}
