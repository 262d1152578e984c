package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

// Features of E2B's create body that SoulBox lacks are refused; what the
// SDKs send by default is accepted.
func TestNewSandboxUnsupported(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{}`, true},
		{`{"templateID":"base","timeout":300,"secure":true,"allow_internet_access":true,"metadata":{"a":"b"}}`, true},
		{`{"allow_internet_access":false,"network":null,"mcp":null,"iam":{},"volumeMounts":[]}`, true},
		{`{"autoPause":true,"autoPauseMemory":true,"autoResume":{"enabled":false}}`, true},
		{`{"autoPauseMemory":false}`, false},
		{`{"autoResume":{"enabled":true}}`, false},
		{`{"mcp":{"github":{}}}`, false},
		{`{"network":{"denyOut":["0.0.0.0/0"],"allowOut":["1.1.1.1"],"allowPublicTraffic":false}}`, true},
		{`{"network":{"egressProxy":{"url":"http://p"}}}`, false},
		{`{"network":{"maskRequestHost":"x.example"}}`, false},
		{`{"network":{"rules":{"a.example":[{}]}}}`, false},
		{`{"iam":{"tokens":{"t":{"audience":"a","tokenType":"b"}}}}`, false},
		{`{"volumeMounts":[{"name":"v","path":"/data"}]}`, false},
	} {
		var b newSandbox
		if err := json.Unmarshal([]byte(c.body), &b); err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		err := b.unsupported()
		if got := err == nil; got != c.ok {
			t.Errorf("%s: unsupported() = %v, want ok %v", c.body, err, c.ok)
		}
		if err != nil && (!errors.Is(err, errUnsupported) || statusOf(err) != 400) {
			t.Errorf("%s: %v (status %d), want errUnsupported and 400", c.body, err, statusOf(err))
		}
	}
}

// E2B's network fields become egress rules: off unless asked for; allow
// and deny lists parsed as CIDRs or addresses; allow_internet_access
// false with rules denies everything else.
func TestEgressRules(t *testing.T) {
	yes, no := true, false
	for _, c := range []struct {
		name          string
		allowInternet *bool
		net           *networkJSON
		want          string // "" = no egress; "error"
	}{
		{"nothing", nil, nil, ""},
		{"false", &no, nil, ""},
		{"true", &yes, nil, "{[] [] []}"},
		{"lists", nil, &networkJSON{AllowOut: []string{"10.1.2.3", "192.168.0.0/16"}, DenyOut: []string{"1.2.3.4/24"}}, "{[10.1.2.3/32 192.168.0.0/16] [1.2.3.0/24] []}"},
		{"false with allow", &no, &networkJSON{AllowOut: []string{"8.8.8.8"}}, "{[8.8.8.8/32] [0.0.0.0/0] []}"},
		{"domain", &yes, &networkJSON{AllowOut: []string{"example.com", "*.Example.org.", "1.2.3.4"}}, "{[1.2.3.4/32] [] [example.com *.example.org]}"},
		{"bad domain", &yes, &networkJSON{AllowOut: []string{"exa mple.com"}}, "error"},
		{"bad address", &yes, &networkJSON{AllowOut: []string{"1.2.3.400"}}, "error"},
		{"domain deny", &yes, &networkJSON{DenyOut: []string{"example.com"}}, "error"},
		{"ipv6", &yes, &networkJSON{DenyOut: []string{"::1/128"}}, "error"},
	} {
		r, err := egressRules(c.allowInternet, c.net)
		got := ""
		switch {
		case err != nil:
			got = "error"
			if statusOf(err) != 400 {
				t.Errorf("%s: status %d, want 400", c.name, statusOf(err))
			}
		case r != nil:
			got = fmt.Sprint(*r)
		}
		if got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
}
