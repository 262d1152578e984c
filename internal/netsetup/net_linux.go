package netsetup

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Net gives sandboxes egress. Create it with New.
type Net struct {
	cfg Config

	mu      sync.Mutex
	filters map[string]*filter // by sandbox id: those with domain rules
}

// ipForward is the host's IPv4 forwarding switch.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

// New checks the configuration; it changes nothing on the host until a
// sandbox gets egress.
func New(cfg Config) (*Net, error) {
	if !cfg.Subnet.IsValid() {
		cfg.Subnet = DefaultSubnet
	}
	if !cfg.Subnet.Addr().Is4() || cfg.Subnet.Bits() > 30 {
		return nil, fmt.Errorf("egress subnet %s: must be IPv4 and at most a /30", cfg.Subnet)
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if len(cfg.Nameservers) == 0 {
		cfg.Nameservers = hostNameservers("/etc/resolv.conf")
	}
	for _, a := range cfg.Nameservers {
		if !a.Is4() || a.IsLoopback() || cfg.Subnet.Contains(a) {
			return nil, fmt.Errorf("nameserver %s: sandboxes need an IPv4 nameserver outside the host's loopback and SoulBox's subnet", a)
		}
	}
	if cfg.LockFile == "" {
		cfg.LockFile = "/run/soulbox/net.lock"
	}
	return &Net{cfg: cfg, filters: map[string]*filter{}}, nil
}

// ResolvConf is the /etc/resolv.conf of a sandbox with egress.
func (n *Net) ResolvConf() string { return ResolvConf(n.cfg.Nameservers) }

// lock takes the host-wide lock on SoulBox's table and veths.
func (n *Net) lock() (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(n.cfg.LockFile), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(n.cfg.LockFile, os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Attach gives the network namespace nsfd (of sandbox id, on uid slot
// slot) a veth to the host with the slot's addresses and a default
// route, and installs its rules. On error nothing is left behind and the
// error wraps ErrUnavailable.
func (n *Net) Attach(nsfd, slot int, id string, r Rules) (retErr error) {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	a, err := addrsOf(n.cfg.Subnet, slot)
	if err != nil {
		return err
	}
	l, err := n.lock()
	if err != nil {
		return fmt.Errorf("%w: lock: %v", ErrUnavailable, err)
	}
	defer l.Close()
	defer func() {
		if retErr != nil {
			retErr = fmt.Errorf("%w: %v", ErrUnavailable, retErr)
		}
	}()
	if err := n.ensureTable(); err != nil {
		return err
	}
	host := HostIfName(slot)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: sandboxIfName, PeerNamespace: netlink.NsFd(nsfd)}
	err = netlink.LinkAdd(veth)
	if errors.Is(err, unix.EEXIST) {
		// A veth of an earlier sandbox on this slot whose namespace the
		// kernel has not finished destroying: we hold the slot, so it is
		// dead. Remove it (the slow path; normally the kernel does).
		if old, lerr := netlink.LinkByName(host); lerr == nil {
			netlink.LinkDel(old)
		}
		err = netlink.LinkAdd(veth)
	}
	if err != nil {
		return fmt.Errorf("create veth %s: %v", host, err)
	}
	defer func() {
		if retErr != nil {
			netlink.LinkDel(veth)
		}
	}()
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: ipnet(a.Gateway, a.Bits)}); err != nil {
		return fmt.Errorf("address %s: %v", host, err)
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return fmt.Errorf("up %s: %v", host, err)
	}
	if err := configureInside(nsfd, a); err != nil {
		return err
	}
	var f *filter
	if len(r.Domains) > 0 {
		if f, err = n.startFilter(id, a, r); err != nil {
			return err
		}
		defer func() {
			if retErr != nil {
				f.stop()
			}
		}()
	}
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := n.removeSlotRules(c, func(s int, _ string) bool { return s == slot }); err != nil {
		return err
	}
	set := n.addDomainRules(c, slot, id, a, f)
	ch := c.AddChain(sandboxChain(id))
	sandboxRules(c, ch, n.cfg.Subnet, n.cfg.Nameservers, r, set)
	c.InsertRule(&nftables.Rule{Table: table, Chain: chainForward, UserData: tag(slot, id), Exprs: append(iif(ifname(host)), jump(ch.Name))})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables rules: %v", err)
	}
	if f != nil {
		n.mu.Lock()
		n.filters[id] = f
		n.mu.Unlock()
	}
	return nil
}

// addDomainRules queues a sandbox's set, redirects and input rules for
// its filter f (nothing when f is nil) and returns the set.
func (n *Net) addDomainRules(c *nftables.Conn, slot int, id string, a Addrs, f *filter) *nftables.Set {
	if f == nil {
		return nil
	}
	set := domainSet(id)
	if err := c.AddSet(set, nil); err != nil {
		return nil
	}
	c.AddChain(chainPre)
	pre, in := c.AddChain(preChain(id)), c.AddChain(inChain(id))
	domainRules(c, pre, in, set, a.Gateway, f.ports)
	host := ifname(HostIfName(slot))
	c.AddRule(&nftables.Rule{Table: table, Chain: chainPre, UserData: tag(slot, id), Exprs: append(iif(host), jump(pre.Name))})
	c.InsertRule(&nftables.Rule{Table: table, Chain: chainInput, UserData: tag(slot, id), Exprs: append(iif(host), jump(in.Name))})
	return set
}

func ipnet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

// configureInside addresses the sandbox's end of the veth and routes
// through the gateway, from a netlink socket in the sandbox's namespace.
func configureInside(nsfd int, a Addrs) error {
	h, err := netlink.NewHandleAt(netns.NsHandle(nsfd), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink in the sandbox: %v", err)
	}
	defer h.Close()
	link, err := h.LinkByName(sandboxIfName)
	if err != nil {
		return fmt.Errorf("sandbox veth: %v", err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: ipnet(a.Sandbox, a.Bits)}); err != nil {
		return fmt.Errorf("sandbox address: %v", err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("sandbox veth up: %v", err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: a.Gateway.AsSlice()}); err != nil {
		return fmt.Errorf("sandbox default route: %v", err)
	}
	return nil
}

// Update replaces a sandbox's rules, atomically.
func (n *Net) Update(slot int, id string, r Rules) error {
	if err := r.Validate(); err != nil {
		return err
	}
	l, err := n.lock()
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	ch := sandboxChain(id)
	if _, err := c.ListChain(table, ch.Name); err != nil {
		return fmt.Errorf("sandbox %s has no egress", id)
	}
	a, err := addrsOf(n.cfg.Subnet, slot)
	if err != nil {
		return err
	}
	n.mu.Lock()
	f := n.filters[id]
	n.mu.Unlock()
	started := false
	if f == nil && len(r.Domains) > 0 {
		// Domains added at run time, or a sandbox adopted by a new
		// daemon: its filter starts here.
		if f, err = n.startFilter(id, a, r); err != nil {
			return err
		}
		started = true
	}
	c.FlushChain(ch)
	// The old set, redirects and input rules go; new ones are made.
	if err := n.removeDomainRules(c, id); err != nil {
		if started {
			f.stop()
		}
		return err
	}
	var keep *filter
	if len(r.Domains) > 0 {
		keep = f
	}
	set := n.addDomainRules(c, slot, id, a, keep)
	sandboxRules(c, ch, n.cfg.Subnet, n.cfg.Nameservers, r, set)
	if err := c.Flush(); err != nil {
		if started {
			f.stop()
		}
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case keep != nil:
		keep.setRules(r)
		keep.resetLearnt()
		n.filters[id] = keep
	case f != nil:
		f.stop()
		delete(n.filters, id)
	}
	return nil
}

// removeDomainRules queues the deletion of a sandbox's set, redirects
// and input rules, those that exist.
func (n *Net) removeDomainRules(c *nftables.Conn, id string) error {
	for _, base := range []*nftables.Chain{chainPre, chainInput} {
		rules, err := c.GetRules(table, base)
		if err != nil {
			continue // no such chain: nothing of this sandbox
		}
		for _, r := range rules {
			if _, rid, ok := parseTag(r.UserData); ok && rid == id {
				if err := c.DelRule(r); err != nil {
					return err
				}
				if name := jumpTarget(r); name != "" {
					c.DelChain(&nftables.Chain{Name: name, Table: table})
				}
			}
		}
	}
	if s, err := c.GetSetByName(table, domainSet(id).Name); err == nil && s != nil {
		c.DelSet(s)
	}
	return nil
}

// jumpTarget is the chain a jump rule jumps to.
func jumpTarget(r *nftables.Rule) string {
	for _, e := range r.Exprs {
		if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump {
			return v.Chain
		}
	}
	return ""
}

// Detach removes a sandbox's rules, and the table when it was the last
// sandbox with egress. Its veth goes with its network namespace (the
// kernel removes both ends when the namespace dies), so Detach never
// waits for a veth deletion.
func (n *Net) Detach(slot int, id string) error {
	n.mu.Lock()
	if f := n.filters[id]; f != nil {
		f.stop()
		delete(n.filters, id)
	}
	n.mu.Unlock()
	l, err := n.lock()
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if err := n.removeSlotRules(c, func(s int, i string) bool { return s == slot && i == id }); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	return n.removeTableIfUnused(c)
}

// Sweep removes what sandboxes that died without Detach left: rules of
// slots nobody holds (held reports whether a uid slot is in use) and
// their veths; then the table if unused.
func (n *Net) Sweep(held func(slot int) bool) error {
	l, err := n.lock()
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		return nil // no table: nothing of ours
	}
	if err := n.removeSlotRules(c, func(s int, _ string) bool { return !held(s) }); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	links, err := netlink.LinkList()
	if err == nil {
		for _, lk := range links {
			name := lk.Attrs().Name
			if s, ok := strings.CutPrefix(name, ifPrefix); ok && lk.Type() == "veth" {
				if slot, err := strconv.Atoi(s); err == nil && !held(slot) {
					netlink.LinkDel(lk)
				}
			}
		}
	}
	return n.removeTableIfUnused(c)
}

// removeSlotRules queues the deletion of the jump rules (and chains) of
// the sandboxes match selects; the caller flushes.
func (n *Net) removeSlotRules(c *nftables.Conn, match func(slot int, id string) bool) error {
	rules, err := c.GetRules(table, chainForward)
	if errors.Is(err, unix.ENOENT) {
		return nil // no table yet
	}
	if err != nil {
		return fmt.Errorf("list sandbox rules: %w", err)
	}
	for _, r := range rules {
		slot, id, ok := parseTag(r.UserData)
		if !ok || !match(slot, id) {
			continue
		}
		if err := c.DelRule(r); err != nil {
			return err
		}
		c.DelChain(sandboxChain(id))
		if err := n.removeDomainRules(c, id); err != nil {
			return err
		}
	}
	return nil
}

// ensureTable creates the table and switches IP forwarding on if the
// table does not exist; the lock is held.
func (n *Net) ensureTable() error {
	c, err := nftables.New()
	if err != nil {
		return err
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err == nil {
		return nil
	}
	prev, err := os.ReadFile(ipForward)
	if err != nil {
		return fmt.Errorf("read %s: %v", ipForward, err)
	}
	weEnabled := strings.TrimSpace(string(prev)) == "0"
	baseRules(c, n.cfg.Subnet, weEnabled)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("create nftables table inet %s: %v", TableName, err)
	}
	if weEnabled {
		// Remember that forwarding was off, to switch it off again with
		// the table (the marker outlives a crashed daemon).
		if err := os.WriteFile(n.forwardMarker(), nil, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(ipForward, []byte("1"), 0); err != nil {
			return fmt.Errorf("enable IP forwarding: %v", err)
		}
	}
	return nil
}

func (n *Net) forwardMarker() string {
	return filepath.Join(filepath.Dir(n.cfg.LockFile), "ip_forward.was-off")
}

// removeTableIfUnused deletes the table once no sandbox chain is left and
// restores IP forwarding; the lock is held.
func (n *Net) removeTableIfUnused(c *nftables.Conn) error {
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return err
	}
	found := false
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		found = true
		if strings.HasPrefix(ch.Name, ifPrefix+"-") {
			return nil
		}
	}
	if found {
		c.DelTable(table)
		if err := c.Flush(); err != nil {
			return err
		}
	}
	if _, err := os.Stat(n.forwardMarker()); err == nil {
		if err := os.WriteFile(ipForward, []byte("0"), 0); err != nil {
			return fmt.Errorf("restore IP forwarding: %v", err)
		}
		return os.Remove(n.forwardMarker())
	}
	return nil
}

// Stats are a sandbox's traffic counters, from its host veth.
type Stats struct {
	BytesOut, PacketsOut uint64 // sent by the sandbox
	BytesIn, PacketsIn   uint64 // received by the sandbox
}

// Stats reads a slot's veth counters.
func (n *Net) Stats(slot int) (Stats, error) {
	l, err := netlink.LinkByName(HostIfName(slot))
	if err != nil {
		return Stats{}, err
	}
	s := l.Attrs().Statistics
	if s == nil {
		return Stats{}, errors.New("no statistics")
	}
	return Stats{BytesOut: s.RxBytes, PacketsOut: s.RxPackets, BytesIn: s.TxBytes, PacketsIn: s.TxPackets}, nil
}
