// Package netsetup gives a sandbox's network namespace egress: a veth
// pair to the host, an address from SoulBox's subnet, a default route,
// NAT on the host, and per-sandbox allow and deny rules — all through
// netlink (vishvananda/netlink) and nftables (google/nftables), never by
// running ip, iptables or nft.
//
// Everything SoulBox adds to the host's firewall lives in one nftables
// table, `inet soulbox`, created with the first sandbox that has egress
// and removed with the last one (IP forwarding is switched on and back
// off with it). The table holds:
//
//   - input: anything arriving from a sandbox's veth (iifname "sbx*") is
//     dropped, so no address of the host — the gateway on the veth, or a
//     service bound to 0.0.0.0 — is reachable from a sandbox;
//   - forward: one jump per sandbox into its own chain "sbx-<id>" (always
//     blocked: link-local 169.254/16, SoulBox's subnet, i.e. other
//     sandboxes, multicast and reserved ranges, IPv6; then the sandbox's
//     allow list, its deny list, the private ranges, and accept); replies
//     to sandboxes only for connections they opened; nothing else to or
//     from a sandbox veth;
//   - postrouting: masquerade of the subnet;
//   - for a sandbox with domain rules: a set "dom-<id>" of its domains'
//     addresses (accepted by its forward chain), a chain "pre-<id>" in
//     prerouting redirecting its DNS and its TCP 80/443 to those addresses
//     to its filter (filter_linux.go), and a chain "in-<id>" at the top of
//     input accepting exactly the filter's ports from its veth.
//
// A Net is safe for concurrent use; changes to the table are also
// serialised across processes (daemon, `soulbox run`) by a lock file.
package netsetup

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// ErrUnavailable wraps every failure to give a sandbox egress: creation
// fails closed with it.
var ErrUnavailable = errors.New("sandbox egress is unavailable")

// DefaultSubnet is where sandbox addresses come from: one /30 per uid
// slot (gateway .1 on the host, sandbox .2).
var DefaultSubnet = netip.MustParsePrefix("10.200.0.0/16")

// Config configures a Net.
type Config struct {
	// Subnet holds one /30 per uid slot; it must be IPv4 and large enough
	// for the slots in use (a /16 covers all 16384).
	Subnet netip.Prefix
	// Nameservers are written to the sandboxes' /etc/resolv.conf and
	// allowed on port 53 even when private; empty means those of the
	// host's /etc/resolv.conf that are not loopback addresses.
	Nameservers []netip.Addr
	// LockFile serialises changes to the table across processes.
	LockFile string
}

// Rules are a sandbox's egress rules. An allowed prefix wins over a
// denied one (as in E2B); private ranges are denied unless allowed;
// link-local, other sandboxes and the host are denied whatever the rules.
//
// Domains ("example.com": that name only; "*.example.com": its
// subdomains) are allowed like prefixes, through SoulBox's DNS filter:
// a sandbox with domains resolves only those names (its DNS queries, to
// any address, go to a filter in the SoulBox process that owns it), the
// addresses in their answers become reachable for the answers' TTL, and
// TCP 80 and 443 to them pass through a proxy that checks the HTTP Host
// or TLS SNI names an allowed domain those addresses were resolved for.
type Rules struct {
	Allow   []netip.Prefix `json:"allow,omitempty"`
	Deny    []netip.Prefix `json:"deny,omitempty"`
	Domains []string       `json:"domains,omitempty"`
}

// MaxRules caps the prefixes of one sandbox (each is one nftables rule).
const MaxRules = 256

// ParsePrefix accepts a CIDR or a bare IPv4 address (a /32).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		if !p.Addr().Is4() {
			return netip.Prefix{}, fmt.Errorf("%q: only IPv4 rules are supported (sandboxes have no IPv6 egress)", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
	}
	if !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: only IPv4 rules are supported (sandboxes have no IPv6 egress)", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

// ParseDomain accepts a domain name ("example.com") or a wildcard for its
// subdomains ("*.example.com"), and returns it lower-cased without a
// final dot.
func ParseDomain(s string) (string, error) {
	d := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	name := strings.TrimPrefix(d, "*.")
	if len(name) == 0 || len(name) > 253 {
		return "", fmt.Errorf("%q is not a domain name", s)
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", fmt.Errorf("%q is not a domain name", s)
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return "", fmt.Errorf("%q is not a domain name", s)
			}
		}
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return "", fmt.Errorf("%q is an address, not a domain name", s)
	}
	return d, nil
}

// ParseAllow sorts an allow entry into a prefix or a domain, as E2B's
// allowOut does.
func ParseAllow(s string) (p netip.Prefix, domain string, err error) {
	if p, err := ParsePrefix(s); err == nil {
		return p, "", nil
	}
	t := strings.TrimSpace(s)
	if strings.ContainsAny(t, "/:") || looksNumeric(t) {
		_, err := ParsePrefix(s)
		return netip.Prefix{}, "", err
	}
	d, err := ParseDomain(s)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q is neither a CIDR, an IP address nor a domain name", s)
	}
	return netip.Prefix{}, d, nil
}

// looksNumeric reports whether s has only digits and dots (a malformed
// address, not a domain).
func looksNumeric(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// AllowsName reports whether the domain entries allow name (lower case,
// no final dot).
func (r Rules) AllowsName(name string) bool {
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, d := range r.Domains {
		if sub, ok := strings.CutPrefix(d, "*."); ok {
			if strings.HasSuffix(name, "."+sub) {
				return true
			}
		} else if name == d {
			return true
		}
	}
	return false
}

// allowsAddr is the prefix part of the rules in Go, as the sandbox's
// nftables chain applies it: whether a is reachable without any domain.
func (r Rules) allowsAddr(subnet netip.Prefix, a netip.Addr) bool {
	if alwaysBlockedAddr(subnet, a) {
		return false
	}
	for _, p := range r.Allow {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range r.Deny {
		if p.Contains(a) {
			return false
		}
	}
	for _, p := range privateRanges {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// domainAddrOK reports whether an address from an allowed domain's DNS
// answer may become reachable: never an always-blocked one, a private
// one only if a prefix allows it.
func (r Rules) domainAddrOK(subnet netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || alwaysBlockedAddr(subnet, a) {
		return false
	}
	for _, p := range privateRanges {
		if p.Contains(a) {
			for _, q := range r.Allow {
				if q.Contains(a) {
					return true
				}
			}
			return false
		}
	}
	return true
}

func alwaysBlockedAddr(subnet netip.Prefix, a netip.Addr) bool {
	if !a.Is4() || subnet.Contains(a) {
		return true
	}
	for _, p := range alwaysBlocked {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Validate checks the rules' size.
func (r Rules) Validate() error {
	if len(r.Allow)+len(r.Deny)+len(r.Domains) > MaxRules {
		return fmt.Errorf("at most %d egress rules", MaxRules)
	}
	for _, d := range r.Domains {
		if n, err := ParseDomain(d); err != nil || n != d {
			return fmt.Errorf("egress domain %q: not a lower-case domain name", d)
		}
	}
	for _, p := range append(append([]netip.Prefix{}, r.Allow...), r.Deny...) {
		if !p.IsValid() || !p.Addr().Is4() {
			return fmt.Errorf("egress rule %v: only IPv4 prefixes", p)
		}
	}
	return nil
}

// alwaysBlocked are never reachable from a sandbox, whatever its rules
// (SoulBox's own subnet is added at run time).
var alwaysBlocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"), // link-local: cloud metadata
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved and broadcast
}

// privateRanges are blocked unless a rule allows them.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("198.18.0.0/15"),
}

// Addrs are a slot's addresses.
type Addrs struct {
	Gateway, Sandbox netip.Addr
	Bits             int
}

// addrsOf computes a slot's /30 in the subnet.
func addrsOf(subnet netip.Prefix, slot int) (Addrs, error) {
	if slot < 0 || slot >= 1<<(30-subnet.Bits()) {
		return Addrs{}, fmt.Errorf("%w: slot %d does not fit in subnet %s (one /30 per slot)", ErrUnavailable, slot, subnet)
	}
	b := subnet.Masked().Addr().As4()
	base := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	at := func(n uint32) netip.Addr {
		v := base + uint32(slot)*4 + n
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	return Addrs{Gateway: at(1), Sandbox: at(2), Bits: 30}, nil
}

// HostIfName is the host end of a slot's veth.
func HostIfName(slot int) string { return ifPrefix + strconv.Itoa(slot) }

// ifPrefix starts every host-side veth name SoulBox creates.
const ifPrefix = "sbx"

// sandboxIfName is the sandbox's end of its veth.
const sandboxIfName = "eth0"

// hostNameservers reads the non-loopback IPv4 nameservers of a
// resolv.conf.
func hostNameservers(path string) []netip.Addr {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil && a.Is4() && !a.IsLoopback() {
			out = append(out, a)
		}
	}
	return out
}

// ResolvConf is the /etc/resolv.conf of a sandbox with egress.
func ResolvConf(ns []netip.Addr) string {
	var b strings.Builder
	b.WriteString("# SoulBox: this sandbox has network egress.\n")
	for _, a := range ns {
		b.WriteString("nameserver " + a.String() + "\n")
	}
	b.WriteString("options edns0\n")
	return b.String()
}
