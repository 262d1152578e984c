package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/soulbox-dev/soulbox/internal/runtime"
)

// pool keeps sandboxes started ahead of demand with the default limits and
// no environment, so Create only has to adjust and hand one out. Pooled
// sandboxes have no record: they are killed on Close, and a daemon that
// dies leaves them as orphans the next Recover destroys.
type pool struct {
	m    *Manager
	size int

	mu    sync.Mutex
	boxes []Box

	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartPool keeps size sandboxes ready. Call it after Recover (which
// would take pooled sandboxes for orphans).
func (m *Manager) StartPool(size int) {
	if size <= 0 {
		return
	}
	p := &pool{m: m, size: size, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	m.mu.Lock()
	m.pool = p
	m.mu.Unlock()
	p.wg.Add(1)
	go p.fill()
	p.refill()
}

func (p *pool) refill() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *pool) fill() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-p.kick:
		}
		for p.len() < p.size {
			box, err := p.m.cfg.Runtime.Start(context.Background(), runtime.Spec{Limits: p.m.cfg.Defaults})
			if err != nil {
				p.m.log.Warn("warm pool: starting a sandbox failed", "err", err)
				select {
				case <-p.stop:
					return
				case <-time.After(time.Second):
				}
				continue
			}
			p.mu.Lock()
			p.boxes = append(p.boxes, box)
			p.mu.Unlock()
			select {
			case <-p.stop:
				box.Kill()
				p.remove(box)
				return
			default:
			}
		}
	}
}

func (p *pool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.boxes)
}

func (p *pool) remove(b Box) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.boxes {
		if x == b {
			p.boxes = append(p.boxes[:i], p.boxes[i+1:]...)
			return
		}
	}
}

// take hands out a live pooled sandbox, or nil.
func (p *pool) take() Box {
	defer p.refill()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.boxes) > 0 {
		b := p.boxes[0]
		p.boxes = p.boxes[1:]
		select {
		case <-b.Done():
			continue // died while waiting
		default:
			return b
		}
	}
	return nil
}

// close stops refilling and kills the pooled sandboxes.
func (p *pool) close() {
	close(p.stop)
	p.wg.Wait()
	p.mu.Lock()
	boxes := p.boxes
	p.boxes = nil
	p.mu.Unlock()
	for _, b := range boxes {
		b.Kill()
	}
}
