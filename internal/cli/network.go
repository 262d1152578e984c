package cli

import (
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/soulbox-dev/soulbox/internal/netsetup"
)

// netFlags configure egress on the host: the subnet sandbox addresses
// come from and the nameservers sandboxes use.
type netFlags struct {
	subnet string
	dns    []string
}

func (f *netFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.subnet, "egress-subnet", netsetup.DefaultSubnet.String(), "IPv4 subnet of sandboxes with egress, one /30 per sandbox")
	fl.StringArrayVar(&f.dns, "dns", nil, "nameserver for sandboxes with egress (repeatable; default: the host's non-loopback ones)")
}

func (f *netFlags) config() (netsetup.Config, error) {
	var c netsetup.Config
	p, err := netip.ParsePrefix(f.subnet)
	if err != nil {
		return c, usageErrorf("--egress-subnet %q: %v", f.subnet, err)
	}
	c.Subnet = p
	for _, s := range f.dns {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, usageErrorf("--dns %q: %v", s, err)
		}
		c.Nameservers = append(c.Nameservers, a)
	}
	return c, nil
}

// egressFlags ask for egress for one run.
type egressFlags struct {
	network           bool
	allowOut, denyOut []string
	allowDomain       []string
}

func (f *egressFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.network, "network", false, "give the sandbox network egress (NAT; the host, link-local, private ranges and other sandboxes stay blocked)")
	fl.StringArrayVar(&f.allowOut, "allow-out", nil, "allow egress to this IPv4 CIDR or address, even a private one (repeatable; implies --network)")
	fl.StringArrayVar(&f.allowDomain, "allow-domain", nil, "allow egress to this domain (\"*.example.com\": its subdomains) through SoulBox's DNS filter and HTTP Host / TLS SNI checks; the sandbox then resolves only allowed domains (repeatable; implies --network; combine with --deny-out 0.0.0.0/0 to allow only these)")
	fl.StringArrayVar(&f.denyOut, "deny-out", nil, "deny egress to this IPv4 CIDR or address (repeatable; implies --network; --allow-out wins)")
}

// rules returns the egress rules asked for, or nil for none.
func (f *egressFlags) rules() (*netsetup.Rules, error) {
	if !f.network && len(f.allowOut) == 0 && len(f.denyOut) == 0 && len(f.allowDomain) == 0 {
		return nil, nil
	}
	var r netsetup.Rules
	for _, s := range f.allowOut {
		p, err := netsetup.ParsePrefix(s)
		if err != nil {
			return nil, usageErrorf("--allow-out: %v", err)
		}
		r.Allow = append(r.Allow, p)
	}
	for _, s := range f.allowDomain {
		d, err := netsetup.ParseDomain(s)
		if err != nil {
			return nil, usageErrorf("--allow-domain: %v", err)
		}
		r.Domains = append(r.Domains, d)
	}
	for _, s := range f.denyOut {
		p, err := netsetup.ParsePrefix(s)
		if err != nil {
			return nil, usageErrorf("--deny-out: %v", err)
		}
		r.Deny = append(r.Deny, p)
	}
	return &r, nil
}
