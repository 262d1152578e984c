package api

import (
	"encoding/json"
	"errors"
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
		{`{"network":{"denyOut":["0.0.0.0/0"]}}`, false},
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
