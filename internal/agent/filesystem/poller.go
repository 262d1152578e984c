package filesystem

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"

	"connectrpc.com/connect"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
)

// poller is a watch whose events wait to be fetched (CreateWatcher,
// GetWatcherEvents, RemoveWatcher), for clients that cannot hold a
// stream open. It keeps at most Config.WatcherBuffer events between
// polls and drops newer ones beyond that.
type poller struct {
	w       *watch
	uid     uint32
	mu      sync.Mutex
	events  []*pb.FilesystemEvent
	dropped int
}

func (p *poller) collect(limit int) {
	for ev := range p.w.out {
		p.mu.Lock()
		if len(p.events) < limit {
			p.events = append(p.events, ev)
		} else {
			p.dropped++
		}
		p.mu.Unlock()
	}
}

func (p *poller) take() []*pb.FilesystemEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	evs := p.events
	p.events = nil
	if p.dropped > 0 {
		p.w.log.Warn("watcher dropped events", "path", p.w.root, "dropped", p.dropped)
		p.dropped = 0
	}
	return evs
}

func (p *poller) close() { p.w.close() }

// CreateWatcher starts a polling watcher and returns its id.
func (s *Service) CreateWatcher(_ context.Context, req *connect.Request[pb.CreateWatcherRequest]) (*connect.Response[pb.CreateWatcherResponse], error) {
	u, p, err := s.target(req.Header(), req.Msg.GetPath())
	if err != nil {
		return nil, connectError(err)
	}
	s.mu.Lock()
	full := len(s.watchers) >= s.cfg.MaxWatchers
	s.mu.Unlock()
	if full {
		return nil, connectError(fmt.Errorf("%w: %d watchers exist; remove some first", errTooManyWatch, s.cfg.MaxWatchers))
	}
	w, err := s.startWatch(u, p, req.Msg.GetRecursive(), req.Msg.GetIncludeEntry())
	if err != nil {
		return nil, connectError(err)
	}
	pl := &poller{w: w, uid: u.UID}
	go pl.collect(s.cfg.WatcherBuffer)
	id := rand.Text()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.close()
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("the service is closing"))
	}
	s.watchers[id] = pl
	s.mu.Unlock()
	return connect.NewResponse(&pb.CreateWatcherResponse{WatcherId: id}), nil
}

// poller returns the watcher with id if the request's user created it.
func (s *Service) poller(req connect.AnyRequest, id string) (*poller, error) {
	u, err := s.userOf(req.Header())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pl, ok := s.watchers[id]
	if !ok || pl.uid != u.UID {
		return nil, fmt.Errorf("%w %q", errNoSuchWatch, id)
	}
	return pl, nil
}

// GetWatcherEvents returns the events since the previous call.
func (s *Service) GetWatcherEvents(_ context.Context, req *connect.Request[pb.GetWatcherEventsRequest]) (*connect.Response[pb.GetWatcherEventsResponse], error) {
	pl, err := s.poller(req, req.Msg.GetWatcherId())
	if err != nil {
		return nil, connectError(err)
	}
	return connect.NewResponse(&pb.GetWatcherEventsResponse{Events: pl.take()}), nil
}

// RemoveWatcher stops a polling watcher.
func (s *Service) RemoveWatcher(_ context.Context, req *connect.Request[pb.RemoveWatcherRequest]) (*connect.Response[pb.RemoveWatcherResponse], error) {
	pl, err := s.poller(req, req.Msg.GetWatcherId())
	if err != nil {
		return nil, connectError(err)
	}
	s.mu.Lock()
	delete(s.watchers, req.Msg.GetWatcherId())
	s.mu.Unlock()
	pl.close()
	return connect.NewResponse(&pb.RemoveWatcherResponse{}), nil
}
