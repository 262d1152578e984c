package api

import (
	"encoding/json"
	"fmt"
)

// networkJSON is E2B's SandboxNetworkConfig, the "network" field of a
// create request.
type networkJSON struct {
	// AllowPublicTraffic false makes the exposed ports require the
	// sandbox's traffic access token (E2B's default is true: public).
	AllowPublicTraffic *bool           `json:"allowPublicTraffic"`
	AllowOut           []string        `json:"allowOut"`
	DenyOut            []string        `json:"denyOut"`
	EgressProxy        json.RawMessage `json:"egressProxy"`
	MaskRequestHost    *string         `json:"maskRequestHost"`
	Rules              json.RawMessage `json:"rules"`
}

// unsupported names the first part of a network config SoulBox cannot
// provide.
func (n *networkJSON) unsupported() error {
	switch {
	case len(n.AllowOut) > 0 || len(n.DenyOut) > 0:
		return fmt.Errorf("%w: network allowOut/denyOut: sandboxes have loopback only", errUnsupported)
	case present(n.EgressProxy):
		return fmt.Errorf("%w: network egressProxy", errUnsupported)
	case n.MaskRequestHost != nil && *n.MaskRequestHost != "":
		return fmt.Errorf("%w: network maskRequestHost: requests reach a sandbox's ports with their own Host", errUnsupported)
	case present(n.Rules):
		return fmt.Errorf("%w: network transform rules", errUnsupported)
	}
	return nil
}
