package test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// inetHost is a test "internet" host: its own network namespace joined to
// the host's by a veth, at 198.51.100.1 (TEST-NET-2, a public range) and,
// reached through it, 169.254.169.254 (as a cloud metadata service) and
// 10.99.0.1 (a private address). An HTTP server on port 80 answers on
// all of them. Traffic in the tests goes only here and to loopback.
type inetHost struct {
	ns     netns.NsHandle
	hostIf string
	srv    *http.Server
	// otherQueries counts the DNS queries for other.test that reached the
	// test host's DNS server.
	otherQueries atomic.Int64
}

// inNS runs fn on a thread in the test internet host's namespace.
func (h *inetHost) inNS(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(h.ns); err != nil {
			errc <- err
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- err // the thread stays locked and dies
			return
		}
		goruntime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// startDNSAndTLS starts the test host's DNS server on inetAddr:53
// (allowed.test, *.wild.test: inetAddr; other.test: otherAddr) and an
// HTTPS server (self-signed) on port 443 saying the same as port 80.
func (h *inetHost) startDNSAndTLS(t *testing.T) {
	var pc net.PacketConn
	var tl, sl net.Listener
	err := h.inNS(func() error {
		var err error
		if pc, err = net.ListenPacket("udp4", inetAddr+":53"); err != nil {
			return err
		}
		if tl, err = net.Listen("tcp4", inetAddr+":53"); err != nil {
			return err
		}
		sl, err = net.Listen("tcp4", "0.0.0.0:443")
		return err
	})
	if err != nil {
		t.Fatalf("test internet: DNS and TLS listeners: %v", err)
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		var ip string
		switch {
		case name == "allowed.test.", strings.HasSuffix(name, ".wild.test."):
			ip = inetAddr
		case name == "other.test.":
			h.otherQueries.Add(1)
			ip = otherAddr
		default:
			m.Rcode = dns.RcodeNameError
		}
		if ip != "" && q.Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
		}
		w.WriteMsg(m)
	})
	us, ts := &dns.Server{PacketConn: pc, Handler: handler}, &dns.Server{Listener: tl, Handler: handler}
	go us.ActivateAndServe()
	go ts.ActivateAndServe()
	tlsSrv := httptest.NewUnstartedServer(h.srv.Handler)
	tlsSrv.Listener.Close()
	tlsSrv.Listener = sl
	tlsSrv.StartTLS()
	t.Cleanup(func() {
		us.Shutdown()
		ts.Shutdown()
		tlsSrv.Close()
	})
}

const (
	inetAddr     = "198.51.100.1"
	inetHostSide = "198.51.100.254"
	metadataAddr = "169.254.169.254"
	privateAddr  = "10.99.0.1"
	// otherAddr is a second address of the test internet host, the
	// answer of its DNS server for other.test (allowed.test is inetAddr).
	otherAddr = "198.51.100.2"
)

func newInetHost(t *testing.T) *inetHost {
	t.Helper()
	h := &inetHost{hostIf: fmt.Sprintf("sbtinet%d", rand.IntN(1000))}
	// A new namespace, made on a locked thread that goes back at once.
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		h.ns, err = netns.New()
		if err != nil {
			errc <- err
			return
		}
		if err := netns.Set(orig); err != nil {
			errc <- err // the thread stays locked and dies
			return
		}
		goruntime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatalf("test internet namespace: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(h.hostIf); err == nil {
			netlink.LinkDel(l)
		}
		if h.srv != nil {
			h.srv.Close()
		}
		h.ns.Close()
	})
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: h.hostIf}, PeerName: "inet0", PeerNamespace: netlink.NsFd(int(h.ns))}
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("test internet: %s: %v", what, err)
		}
	}
	must("veth", netlink.LinkAdd(veth))
	must("host addr", netlink.AddrAdd(veth, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(inetHostSide), Mask: net.CIDRMask(24, 32)}}))
	must("host up", netlink.LinkSetUp(veth))
	for _, a := range []string{metadataAddr, privateAddr} {
		must("route "+a, netlink.RouteAdd(&netlink.Route{LinkIndex: veth.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP(a), Mask: net.CIDRMask(32, 32)}, Gw: net.ParseIP(inetAddr)}))
	}
	nh, err := netlink.NewHandleAt(h.ns)
	must("handle", err)
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	must("lo", err)
	must("lo up", nh.LinkSetUp(lo))
	in, err := nh.LinkByName("inet0")
	must("inet0", err)
	for _, a := range []string{inetAddr + "/24", otherAddr + "/24", metadataAddr + "/32", privateAddr + "/32"} {
		addr, _ := netlink.ParseAddr(a)
		must("addr "+a, nh.AddrAdd(in, addr))
	}
	must("inet0 up", nh.LinkSetUp(in))
	must("default route", nh.RouteAdd(&netlink.Route{LinkIndex: in.Attrs().Index, Gw: net.ParseIP(inetHostSide)}))
	// The listener is made inside the namespace; serving goes on anywhere.
	var ln net.Listener
	go func() {
		goruntime.LockOSThread()
		orig, _ := netns.Get()
		defer orig.Close()
		if err := netns.Set(h.ns); err != nil {
			errc <- err
			return
		}
		ln, err = net.Listen("tcp4", "0.0.0.0:80")
		if serr := netns.Set(orig); serr != nil {
			errc <- serr
			return
		}
		goruntime.UnlockOSThread()
		errc <- err
	}()
	must("listen", <-errc)
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "internet says hi to %s", strings.Split(r.RemoteAddr, ":")[0])
	}), ReadHeaderTimeout: 5 * time.Second}
	go h.srv.Serve(ln)
	h.startDNSAndTLS(t)
	// Positive control: the host reaches every address.
	c := http.Client{Timeout: 3 * time.Second}
	for _, a := range []string{inetAddr, metadataAddr, privateAddr} {
		resp, err := c.Get("http://" + a + "/")
		must("host reaches "+a, err)
		resp.Body.Close()
	}
	return h
}

// sandboxLinks lists SoulBox's host-side veths.
func sandboxLinks(t testing.TB) []string {
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "sbx") {
			out = append(out, l.Attrs().Name)
		}
	}
	return out
}

// networkClean waits until no SoulBox veth is left (the kernel removes
// them when a sandbox's namespace dies, asynchronously) and checks the
// nftables table is gone.
func networkClean(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(sandboxLinks(t)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if l := sandboxLinks(t); len(l) > 0 {
		t.Errorf("veths left: %v", l)
	}
	if tableExists(t) {
		t.Errorf("nftables table inet soulbox left behind")
	}
}

func tableExists(t testing.TB) bool {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_NETFILTER)
	if err != nil {
		t.Fatalf("nftables needs netlink: %v", err)
	}
	unix.Close(s)
	return nftTableExists()
}
