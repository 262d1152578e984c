package netsetup

import (
	"net/netip"
	"testing"
)

func TestParseAllow(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.3.4":        "prefix 1.2.3.4/32",
		"10.0.0.0/8":     "prefix 10.0.0.0/8",
		"Example.COM.":   "domain example.com",
		"*.example.com":  "domain *.example.com",
		"a_b.example":    "domain a_b.example",
		"1.2.3.400":      "error",
		"::1":            "error",
		"exa mple.com":   "error",
		"*.":             "error",
		"-bad.com":       "error",
		"*.*.example":    "error",
		"":               "error",
		"example.com/24": "error",
	} {
		p, d, err := ParseAllow(in)
		got := "error"
		switch {
		case err != nil:
		case d != "":
			got = "domain " + d
		default:
			got = "prefix " + p.String()
		}
		if got != want {
			t.Errorf("ParseAllow(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestAllowsName(t *testing.T) {
	r := Rules{Domains: []string{"allowed.test", "*.wild.test"}}
	for name, want := range map[string]bool{
		"allowed.test": true, "ALLOWED.test.": true, "x.allowed.test": false,
		"a.wild.test": true, "a.b.wild.test": true, "wild.test": false, "xwild.test": false,
		"other.test": false, "": false,
	} {
		if got := r.AllowsName(name); got != want {
			t.Errorf("AllowsName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestAddrPolicy(t *testing.T) {
	subnet := DefaultSubnet
	ip := netip.MustParseAddr
	r := Rules{Allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}, Deny: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	for a, want := range map[string][2]bool{ // allowsAddr, domainAddrOK
		"8.8.8.8":         {false, true},
		"10.1.2.3":        {true, true},
		"10.2.0.1":        {false, false},
		"192.168.1.1":     {false, false},
		"169.254.169.254": {false, false},
		"127.0.0.1":       {false, false},
		"10.200.0.6":      {false, false}, // another sandbox
	} {
		if got := [2]bool{r.allowsAddr(subnet, ip(a)), r.domainAddrOK(subnet, ip(a))}; got != want {
			t.Errorf("%s: got %v, want %v", a, got, want)
		}
	}
	if !(Rules{}).allowsAddr(subnet, ip("8.8.8.8")) || (Rules{}).allowsAddr(subnet, ip("10.0.0.1")) {
		t.Error("default rules: public allowed, private denied")
	}
}
