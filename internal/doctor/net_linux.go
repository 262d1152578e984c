package doctor

import (
	"os"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// netChecks are what sandbox egress needs (`--network`,
// allow_internet_access); egress is optional, so none is required:
// without them a request for egress fails and sandboxes have loopback.
func netChecks() []Check {
	return []Check{
		{
			Name: "nftables (egress)", Required: false,
			Fix:   "egress needs nf_tables with inet tables and masquerade (modprobe nf_tables nft_masq nft_ct; kernel CONFIG_NF_TABLES_INET)",
			Probe: probeNftables,
		},
		{
			Name: "ip_forward writable (egress)", Required: false,
			Fix:   "egress switches net.ipv4.ip_forward on while sandboxes have egress: run as root with a writable /proc/sys (not in a container with a read-only /proc/sys)",
			Probe: probeIPForward,
		},
	}
}

func probeNftables() (bool, string) {
	c, err := nftables.New()
	if err != nil {
		return false, err.Error()
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, "cannot list nftables tables: " + err.Error()
	}
	for _, t := range tables {
		if t.Name == "soulbox" {
			return true, "works; table inet soulbox present (sandboxes with egress exist)"
		}
	}
	return true, "works"
}

func probeIPForward() (bool, string) {
	f, err := os.OpenFile("/proc/sys/net/ipv4/ip_forward", os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, err.Error()
	}
	f.Close()
	b, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if len(b) > 0 && b[0] == '1' {
		return true, "writable (on)"
	}
	return true, "writable (off until a sandbox has egress)"
}
