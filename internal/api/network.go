package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/soulbox-dev/soulbox/internal/netsetup"
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
	case present(n.EgressProxy):
		return fmt.Errorf("%w: network egressProxy", errUnsupported)
	case n.MaskRequestHost != nil && *n.MaskRequestHost != "":
		return fmt.Errorf("%w: network maskRequestHost: requests reach a sandbox's ports with their own Host", errUnsupported)
	case present(n.Rules):
		return fmt.Errorf("%w: network transform rules", errUnsupported)
	}
	return nil
}

// egressRules builds a sandbox's egress rules from E2B's fields: egress
// is on with allow_internet_access true or any allowOut/denyOut entry
// (SoulBox's default is off; E2B's is on); allow_internet_access false
// with rules denies everything but allowOut (E2B: "the same as denyOut
// 0.0.0.0/0"). nil means no egress.
func egressRules(allowInternet *bool, n *networkJSON) (*netsetup.Rules, error) {
	var allow, deny []string
	if n != nil {
		allow, deny = n.AllowOut, n.DenyOut
	}
	if (allowInternet == nil || !*allowInternet) && len(allow) == 0 && len(deny) == 0 {
		return nil, nil
	}
	r, err := parseRules(allow, deny)
	if err != nil {
		return nil, err
	}
	if allowInternet != nil && !*allowInternet {
		r.Deny = append(r.Deny, netip.MustParsePrefix("0.0.0.0/0"))
	}
	return &r, nil
}

func parseRules(allow, deny []string) (netsetup.Rules, error) {
	var r netsetup.Rules
	for _, s := range allow {
		p, d, err := netsetup.ParseAllow(s)
		if err != nil {
			return r, fmt.Errorf("%w: allowOut %v", errBadRequest, err)
		}
		if d != "" {
			r.Domains = append(r.Domains, d)
		} else {
			r.Allow = append(r.Allow, p)
		}
	}
	for _, s := range deny {
		p, err := netsetup.ParsePrefix(s)
		if err != nil {
			return r, fmt.Errorf("%w: denyOut %v", errBadRequest, err)
		}
		r.Deny = append(r.Deny, p)
	}
	if err := r.Validate(); err != nil {
		return r, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return r, nil
}

// networkUpdate is E2B's SandboxNetworkUpdateConfig: it replaces the
// rules; omitted fields clear them.
type networkUpdate struct {
	AllowOut            []string        `json:"allowOut"`
	DenyOut             []string        `json:"denyOut"`
	AllowInternetAccess *bool           `json:"allow_internet_access"`
	EgressProxy         json.RawMessage `json:"egressProxy"`
	Rules               json.RawMessage `json:"rules"`
}

// updateNetwork answers PUT /sandboxes/{id}/network.
func (s *Server) updateNetwork(w http.ResponseWriter, r *http.Request) {
	var body networkUpdate
	if err := decodeBody(w, r, &body, false); err != nil {
		s.writeErr(w, err)
		return
	}
	if present(body.EgressProxy) || present(body.Rules) {
		s.writeErr(w, fmt.Errorf("%w: network egressProxy and transform rules", errUnsupported))
		return
	}
	rules, err := parseRules(body.AllowOut, body.DenyOut)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if body.AllowInternetAccess != nil && !*body.AllowInternetAccess {
		rules.Deny = append(rules.Deny, netip.MustParsePrefix("0.0.0.0/0"))
	}
	if err := s.cfg.Manager.SetEgress(r.Context(), teamOf(r), r.PathValue("id"), rules); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
