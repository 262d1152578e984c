package netsetup

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// TableName is SoulBox's nftables table (family inet).
const TableName = "soulbox"

var (
	table      = &nftables.Table{Name: TableName, Family: nftables.TableFamilyINet}
	accept     = nftables.ChainPolicyAccept
	chainInput = &nftables.Chain{Name: "input", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	chainForward = &nftables.Chain{Name: "forward", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept}
	chainNAT = &nftables.Chain{Name: "postrouting", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept}
)

// sandboxChain is the chain of one sandbox's egress rules.
func sandboxChain(id string) *nftables.Chain {
	return &nftables.Chain{Name: ifPrefix + "-" + id, Table: table}
}

// tag marks a sandbox's jump rule: "slot=N id=ID" as an nft comment.
func tag(slot int, id string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, "slot="+strconv.Itoa(slot)+" id="+id)
}

// parseTag reads a jump rule's tag.
func parseTag(ud []byte) (slot int, id string, ok bool) {
	s, ok := userdata.GetString(ud, userdata.TypeComment)
	if !ok {
		return 0, "", false
	}
	a, b, ok := strings.Cut(s, " ")
	if !ok || !strings.HasPrefix(a, "slot=") || !strings.HasPrefix(b, "id=") {
		return 0, "", false
	}
	slot, err := strconv.Atoi(a[len("slot="):])
	if err != nil {
		return 0, "", false
	}
	return slot, b[len("id="):], true
}

// ifname is an exact interface-name match value (NUL-padded).
func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func iif(name []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: name},
	}
}

func oif(op expr.CmpOp, name []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: name},
	}
}

// anySandbox matches every SoulBox veth ("sbx*": a prefix compare).
var anySandbox = []byte(ifPrefix)

func established() []expr.Any {
	mask := make([]byte, 4)
	binary.NativeEndian.PutUint32(mask, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

func notIPv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// addr matches the IPv4 source (offset 12) or destination (16) in p.
func addr(offset uint32, p netip.Prefix) []expr.Any {
	mask := netip.PrefixFrom(netip.IPv4Unspecified(), 0).Addr().As4()
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	a := p.Masked().Addr().As4()
	return append(ipv4(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask[:], Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
	)
}

func daddr(p netip.Prefix) []expr.Any { return addr(16, p) }

// dnsTo matches UDP or TCP to port 53 of a.
func dnsTo(a netip.Addr, proto byte) []expr.Any {
	return append(daddr(netip.PrefixFrom(a, 32)),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 53}},
	)
}

func verdict(e []expr.Any, k expr.VerdictKind) []expr.Any {
	return append(e, &expr.Verdict{Kind: k})
}

// baseRules fills the table's base chains. dropOtherForwarding is set
// when SoulBox switched IP forwarding on: the host then forwards nothing
// but sandbox traffic, as before.
func baseRules(c *nftables.Conn, subnet netip.Prefix, dropOtherForwarding bool) {
	c.AddTable(table)
	c.AddChain(chainInput)
	c.AddChain(chainForward)
	c.AddChain(chainNAT)
	// Nothing from a sandbox reaches the host itself: no address of the
	// host (gateways, 0.0.0.0 services), whatever protocol.
	c.AddRule(&nftables.Rule{Table: table, Chain: chainInput, Exprs: verdict(iif(anySandbox), expr.VerdictDrop)})
	// Sandbox jumps are inserted above these: replies to connections a
	// sandbox opened go in; nothing else enters or leaves a sandbox veth.
	c.AddRule(&nftables.Rule{Table: table, Chain: chainForward, Exprs: verdict(append(oif(expr.CmpOpEq, anySandbox), established()...), expr.VerdictAccept)})
	c.AddRule(&nftables.Rule{Table: table, Chain: chainForward, Exprs: verdict(oif(expr.CmpOpEq, anySandbox), expr.VerdictDrop)})
	c.AddRule(&nftables.Rule{Table: table, Chain: chainForward, Exprs: verdict(iif(anySandbox), expr.VerdictDrop)})
	if dropOtherForwarding {
		c.AddRule(&nftables.Rule{Table: table, Chain: chainForward, Exprs: verdict(established(), expr.VerdictAccept)})
		c.AddRule(&nftables.Rule{Table: table, Chain: chainForward, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	}
	c.AddRule(&nftables.Rule{Table: table, Chain: chainNAT, Exprs: append(append(addr(12, subnet), oif(expr.CmpOpNeq, anySandbox)...), &expr.Masq{})})
}

// sandboxRules fills a sandbox's chain.
// set, if not nil, holds the addresses of the sandbox's domains (allowed
// before the deny list: an allowed entry wins, as in E2B).
func sandboxRules(c *nftables.Conn, ch *nftables.Chain, subnet netip.Prefix, ns []netip.Addr, r Rules, set *nftables.Set) {
	add := func(e []expr.Any) { c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: e}) }
	add(verdict(notIPv4(), expr.VerdictDrop))
	for _, p := range append([]netip.Prefix{subnet}, alwaysBlocked...) {
		add(verdict(daddr(p), expr.VerdictDrop))
	}
	if set != nil {
		add(verdict(inSet(set), expr.VerdictAccept))
	}
	for _, a := range ns {
		add(verdict(dnsTo(a, unix.IPPROTO_UDP), expr.VerdictAccept))
		add(verdict(dnsTo(a, unix.IPPROTO_TCP), expr.VerdictAccept))
	}
	for _, p := range r.Allow {
		add(verdict(daddr(p), expr.VerdictAccept))
	}
	for _, p := range r.Deny {
		add(verdict(daddr(p), expr.VerdictDrop))
	}
	for _, p := range privateRanges {
		add(verdict(daddr(p), expr.VerdictDrop))
	}
	add([]expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}})
}

func jump(chain string) *expr.Verdict { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

// chainPre redirects the DNS and web traffic of sandboxes with domain
// rules to their filter (per-sandbox chains "pre-<id>").
var chainPre = &nftables.Chain{Name: "prerouting", Table: table, Type: nftables.ChainTypeNAT,
	Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept}

// domainSet holds the addresses of a sandbox's allowed domains, each for
// its DNS answer's TTL.
func domainSet(id string) *nftables.Set {
	return &nftables.Set{Table: table, Name: "dom-" + id, KeyType: nftables.TypeIPAddr, HasTimeout: true}
}

// preChain and inChain hold a sandbox's redirects to its filter and the
// host input it may reach: exactly the filter's ports.
func preChain(id string) *nftables.Chain { return &nftables.Chain{Name: "pre-" + id, Table: table} }
func inChain(id string) *nftables.Chain  { return &nftables.Chain{Name: "in-" + id, Table: table} }

// filterPorts are a sandbox filter's listeners on its gateway address.
type filterPorts struct {
	DNSUDP, DNSTCP, Proxy uint16
}

// dport matches an IPv4 packet of proto to port.
func dport(proto byte, port uint16) []expr.Any {
	return append(ipv4(),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
	)
}

func inSet(s *nftables.Set) []expr.Any {
	return append(ipv4(),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Lookup{SourceRegister: 1, SetName: s.Name, SetID: s.ID},
	)
}

func redirect(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Immediate{Register: 1, Data: []byte{byte(port >> 8), byte(port)}},
		&expr.Redir{RegisterProtoMin: 1},
	}
}

// domainRules fills a sandbox's prerouting and input chains: all its DNS
// (to any address) goes to its filter; TCP 80 and 443 to addresses of its
// domains go to its proxy; the host accepts from its veth exactly the
// filter's ports on its gateway address.
func domainRules(c *nftables.Conn, pre, in *nftables.Chain, set *nftables.Set, gw netip.Addr, p filterPorts) {
	add := func(ch *nftables.Chain, e []expr.Any) { c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: e}) }
	add(pre, append(dport(unix.IPPROTO_UDP, 53), redirect(p.DNSUDP)...))
	add(pre, append(dport(unix.IPPROTO_TCP, 53), redirect(p.DNSTCP)...))
	for _, port := range []uint16{80, 443} {
		add(pre, append(append(inSet(set), dport(unix.IPPROTO_TCP, port)...), redirect(p.Proxy)...))
	}
	to := daddr(netip.PrefixFrom(gw, 32))
	add(in, verdict(append(append([]expr.Any{}, to...), dport(unix.IPPROTO_UDP, p.DNSUDP)...), expr.VerdictAccept))
	add(in, verdict(append(append([]expr.Any{}, to...), dport(unix.IPPROTO_TCP, p.DNSTCP)...), expr.VerdictAccept))
	add(in, verdict(append(append([]expr.Any{}, to...), dport(unix.IPPROTO_TCP, p.Proxy)...), expr.VerdictAccept))
}
