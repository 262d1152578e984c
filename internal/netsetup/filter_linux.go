package netsetup

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// A filter enforces a sandbox's domain rules: a DNS server that answers
// only allowed names (forwarding them to the configured nameservers) and
// adds the addresses of each answer to the sandbox's nftables set for
// the answer's TTL, and a transparent proxy for TCP 80 and 443 to those
// addresses that checks every HTTP request's Host and the TLS SNI.
// Both listen on the sandbox's gateway address, on ports nftables
// redirects the sandbox's traffic to and accepts from its veth only;
// they live in the process that attached the sandbox.
type filter struct {
	n   *Net
	id  string
	a   Addrs
	set *nftables.Set

	mu       sync.Mutex
	rules    Rules
	resolved map[string]map[netip.Addr]time.Time // name -> address -> expiry

	udp, tcp *dns.Server
	proxy    net.Listener
	ports    filterPorts
}

// TTL bounds of an address learnt from a DNS answer.
const (
	minDomainTTL = 30 * time.Second
	maxDomainTTL = time.Hour
)

func (n *Net) startFilter(id string, a Addrs, r Rules) (*filter, error) {
	f := &filter{n: n, id: id, a: a, set: domainSet(id), rules: r, resolved: map[string]map[netip.Addr]time.Time{}}
	gw := a.Gateway.String() + ":0"
	pc, err := net.ListenPacket("udp4", gw)
	if err != nil {
		return nil, fmt.Errorf("DNS filter: %v", err)
	}
	tl, err := net.Listen("tcp4", gw)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("DNS filter: %v", err)
	}
	pl, err := net.Listen("tcp4", gw)
	if err != nil {
		pc.Close()
		tl.Close()
		return nil, fmt.Errorf("web filter: %v", err)
	}
	f.ports = filterPorts{
		DNSUDP: uint16(pc.LocalAddr().(*net.UDPAddr).Port),
		DNSTCP: uint16(tl.Addr().(*net.TCPAddr).Port),
		Proxy:  uint16(pl.Addr().(*net.TCPAddr).Port),
	}
	f.udp = &dns.Server{PacketConn: pc, Handler: f}
	f.tcp = &dns.Server{Listener: tl, Handler: f}
	f.proxy = pl
	go f.udp.ActivateAndServe()
	go f.tcp.ActivateAndServe()
	go f.serveProxy()
	return f, nil
}

func (f *filter) stop() {
	f.udp.Shutdown()
	f.tcp.Shutdown()
	f.proxy.Close()
}

func (f *filter) setRules(r Rules) {
	f.mu.Lock()
	f.rules = r
	f.mu.Unlock()
}

func (f *filter) snapshot() Rules {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rules
}

// ServeDNS answers one query of the sandbox.
func (f *filter) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if from, ok := addrOf(w.RemoteAddr()); !ok || from != f.a.Sandbox {
		return
	}
	refuse := func(code int) {
		m := new(dns.Msg)
		m.SetRcode(req, code)
		w.WriteMsg(m)
	}
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		refuse(dns.RcodeRefused)
		return
	}
	name := strings.TrimSuffix(strings.ToLower(req.Question[0].Name), ".")
	rules := f.snapshot()
	if !rules.AllowsName(name) {
		// Never forwarded: no DNS tunnel out of a sandbox whose other
		// egress is denied.
		refuse(dns.RcodeRefused)
		return
	}
	c := dns.Client{Net: w.LocalAddr().Network(), Timeout: 3 * time.Second}
	var resp *dns.Msg
	var err error
	for _, ns := range f.n.cfg.Nameservers {
		if resp, _, err = c.Exchange(req, net.JoinHostPort(ns.String(), "53")); err == nil {
			break
		}
	}
	if resp == nil {
		slog.Debug("DNS filter: no upstream answer", "sandbox", f.id, "name", name, "err", err)
		refuse(dns.RcodeServerFailure)
		return
	}
	var addrs []netip.Addr
	var ttl uint32
	for _, rr := range resp.Answer {
		if a, ok := rr.(*dns.A); ok {
			if ip, ok := netip.AddrFromSlice(a.A.To4()); ok {
				addrs = append(addrs, ip)
				if ttl == 0 || a.Hdr.Ttl < ttl {
					ttl = a.Hdr.Ttl
				}
			}
		}
	}
	if len(addrs) > 0 {
		if err := f.learn(rules, name, addrs, time.Duration(ttl)*time.Second); err != nil {
			slog.Warn("DNS filter: allow addresses", "sandbox", f.id, "name", name, "err", err)
			refuse(dns.RcodeServerFailure)
			return
		}
	}
	resp.Id = req.Id
	w.WriteMsg(resp)
}

func addrOf(a net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// learn makes addrs (an allowed name's answer) reachable for ttl,
// skipping those no domain may open: always-blocked ones, private ones
// no prefix allows, and the host's own.
func (f *filter) learn(r Rules, name string, addrs []netip.Addr, ttl time.Duration) error {
	ttl = min(max(ttl, minDomainTTL), maxDomainTTL)
	exp := time.Now().Add(ttl)
	var fresh, refresh []nftables.SetElement
	f.mu.Lock()
	m := f.resolved[name]
	if m == nil {
		m = map[netip.Addr]time.Time{}
		f.resolved[name] = m
	}
	for _, a := range addrs {
		if !r.domainAddrOK(f.n.cfg.Subnet, a) || isHostAddr(a) {
			continue
		}
		el := nftables.SetElement{Key: a.AsSlice(), Timeout: ttl}
		if f.known(a) {
			refresh = append(refresh, el)
		} else {
			fresh = append(fresh, el)
		}
		m[a] = exp
	}
	f.mu.Unlock()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if len(refresh) > 0 {
		// Refresh the timeout: delete and add in one transaction (if one
		// expired meanwhile the delete fails, and they are added anew).
		if err := c.SetDeleteElements(f.set, refresh); err == nil {
			if err := c.SetAddElements(f.set, refresh); err == nil && c.Flush() == nil {
				refresh = nil
			}
		}
	}
	if all := append(fresh, refresh...); len(all) > 0 {
		if err := c.SetAddElements(f.set, all); err != nil {
			return err
		}
		return c.Flush()
	}
	return nil
}

// known reports whether a is in the set still (per the filter's own
// book-keeping); f.mu is held.
func (f *filter) known(a netip.Addr) bool {
	now := time.Now()
	for _, m := range f.resolved {
		if exp, ok := m[a]; ok && exp.After(now) {
			return true
		}
	}
	return false
}

// permit reports whether the sandbox may open a connection to dst for
// the name it gave (HTTP Host or TLS SNI; "" if none).
func (f *filter) permit(name string, dst netip.Addr) bool {
	if alwaysBlockedAddr(f.n.cfg.Subnet, dst) || isHostAddr(dst) {
		return false
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	f.mu.Lock()
	r := f.rules
	exp, ok := f.resolved[name][dst]
	f.mu.Unlock()
	if name != "" && r.AllowsName(name) && ok && exp.After(time.Now()) {
		return true
	}
	// Reachable by its prefix rules alone, whatever the name.
	return r.allowsAddr(f.n.cfg.Subnet, dst)
}

// isHostAddr reports whether a is an address of the host (where the
// filter runs): the proxy never connects to the host itself.
func isHostAddr(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func (f *filter) serveProxy() {
	for {
		c, err := f.proxy.Accept()
		if err != nil {
			return
		}
		go f.handle(c.(*net.TCPConn))
	}
}

// originalDst is where the sandbox sent a redirected connection.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var m *unix.IPv6Mreq
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		m, gerr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if gerr != nil {
		return netip.AddrPort{}, gerr
	}
	b := m.Multiaddr
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), uint16(b[2])<<8|uint16(b[3])), nil
}

// dialUpstream connects from the host to dst, re-checking the address
// when the socket connects.
func (f *filter) dialUpstream(dst netip.AddrPort) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil || ap.Addr().Unmap() != dst.Addr() || isHostAddr(ap.Addr().Unmap()) || alwaysBlockedAddr(f.n.cfg.Subnet, ap.Addr().Unmap()) {
			return errors.New("refused destination")
		}
		return nil
	}}
	return d.Dial("tcp4", dst.String())
}

func (f *filter) handle(c *net.TCPConn) {
	defer c.Close()
	if from, ok := addrOf(c.RemoteAddr()); !ok || from != f.a.Sandbox {
		return
	}
	dst, err := originalDst(c)
	if err != nil || dst.Addr() == f.a.Gateway {
		return // not redirected: a direct connection to the port
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	switch dst.Port() {
	case 443:
		f.handleTLS(c, dst)
	case 80:
		f.handleHTTP(c, dst)
	}
}

// handleTLS peeks the ClientHello's SNI, then splices.
func (f *filter) handleTLS(c *net.TCPConn, dst netip.AddrPort) {
	var seen bytes.Buffer
	var sni string
	errPeeked := errors.New("peeked")
	_ = tls.Server(peekConn{Conn: c, r: io.TeeReader(io.LimitReader(c, 64<<10), &seen)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni = h.ServerName
			return nil, errPeeked
		},
	}).Handshake()
	if !f.permit(sni, dst.Addr()) {
		slog.Info("egress refused", "sandbox", f.id, "dst", dst, "sni", sni)
		return
	}
	up, err := f.dialUpstream(dst)
	if err != nil {
		return
	}
	defer up.Close()
	c.SetReadDeadline(time.Time{})
	if _, err := up.Write(seen.Bytes()); err != nil {
		return
	}
	splice(c, up)
}

// handleHTTP checks the Host of every request on the connection.
func (f *filter) handleHTTP(c *net.TCPConn, dst netip.AddrPort) {
	br := bufio.NewReader(c)
	var up net.Conn
	var ubr *bufio.Reader
	defer func() {
		if up != nil {
			up.Close()
		}
	}()
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		host := req.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !f.permit(host, dst.Addr()) {
			slog.Info("egress refused", "sandbox", f.id, "dst", dst, "host", host)
			io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 47\r\n\r\nSoulBox: this host is not allowed for sandbox\r\n")
			return
		}
		c.SetReadDeadline(time.Time{})
		if up == nil {
			if up, err = f.dialUpstream(dst); err != nil {
				io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				return
			}
			ubr = bufio.NewReader(up)
		}
		if err := req.Write(up); err != nil {
			return
		}
		resp, err := http.ReadResponse(ubr, req)
		if err != nil {
			return
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if err := resp.Write(c); err != nil {
				return
			}
			// An upgraded connection carries no more requests.
			splice(readerConn{Conn: c, r: br}, readerConn{Conn: up, r: ubr})
			return
		}
		err = resp.Write(c)
		resp.Body.Close()
		if err != nil || resp.Close || req.Close {
			return
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Minute))
	}
}

// peekConn reads through r and never writes (the ClientHello peek).
type peekConn struct {
	net.Conn
	r io.Reader
}

func (p peekConn) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p peekConn) Write(b []byte) (int, error) { return 0, io.ErrClosedPipe }

// readerConn reads through a buffered reader of the connection.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (p readerConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// splice copies both ways until either side ends.
func splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if t, ok := dst.(interface{ CloseWrite() error }); ok {
			t.CloseWrite()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	<-done
}

func (p readerConn) CloseWrite() error {
	if t, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return t.CloseWrite()
	}
	return p.Close()
}

// resetLearnt forgets which names the addresses were learnt for after a
// rules change (the set was made anew, empty).
func (f *filter) resetLearnt() {
	f.mu.Lock()
	f.resolved = map[string]map[netip.Addr]time.Time{}
	f.mu.Unlock()
}
