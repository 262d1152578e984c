// Package daemonclient is the small HTTP client the benchmarks drive a
// SoulBox daemon with: control-plane calls with an API key, and the
// agent's process service through the daemon's data plane.
package daemonclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// Client talks to one daemon.
type Client struct {
	URL, Key string
	HTTP     *http.Client
}

// New returns a client with a connection pool sized for concurrent use.
func New(url, key string) *Client {
	return &Client{URL: url, Key: key, HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// Sandbox is what a create answers with.
type Sandbox struct {
	ID    string `json:"sandboxID"`
	Token string `json:"envdAccessToken"`
}

// Call makes a control-plane request; out, if non-nil, receives the JSON
// answer. A status of 300 or more is an error.
func (c *Client) Call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", c.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Processes is the sandbox's process service, reached through the daemon
// with the data-plane headers.
func (c *Client) Processes(sb Sandbox) processconnect.ProcessClient {
	return processconnect.NewProcessClient(&http.Client{Transport: sandboxHeaders{sb, c.HTTP.Transport}}, c.URL)
}

type sandboxHeaders struct {
	sb   Sandbox
	next http.RoundTripper
}

func (h sandboxHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("E2b-Sandbox-Id", h.sb.ID)
	r.Header.Set("X-Access-Token", h.sb.Token)
	next := h.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}
