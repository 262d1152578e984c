package soulbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is the daemon address used when neither WithURL nor the
// SOULBOX_URL / E2B_API_URL environment variables give one.
const DefaultURL = "http://127.0.0.1:8080"

// DefaultTimeout is how long a sandbox stays alive after Connect when
// nothing else is asked for, as in E2B's SDKs.
const DefaultTimeout = 5 * time.Minute

// Client talks to one SoulBox daemon with one API key. It is safe for
// concurrent use; it holds no connections of its own beyond those pooled
// by its *http.Client, so it needs no closing.
type Client struct {
	baseURL *url.URL
	apiKey  string
	hc      *http.Client
}

// Option configures a Client.
type Option func(*Client) error

// WithURL sets the daemon's base URL, e.g. "http://127.0.0.1:8080".
func WithURL(rawURL string) Option {
	return func(c *Client) error {
		u, err := parseBaseURL(rawURL)
		if err != nil {
			return err
		}
		c.baseURL = u
		return nil
	}
}

// WithAPIKey sets the API key sent as X-API-Key.
func WithAPIKey(key string) Option {
	return func(c *Client) error {
		c.apiKey = key
		return nil
	}
}

// WithHTTPClient sets the HTTP client used for every request. Its Timeout
// must be zero: command and watch streams stay open as long as they run
// (bound them with a context instead).
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return fmt.Errorf("%w: nil *http.Client", ErrInvalid)
		}
		c.hc = hc
		return nil
	}
}

// NewClient returns a Client. Without options the URL comes from
// SOULBOX_URL (then E2B_API_URL, then DefaultURL) and the API key from
// SOULBOX_API_KEY (then E2B_API_KEY).
func NewClient(opts ...Option) (*Client, error) {
	c := &Client{apiKey: firstEnv("SOULBOX_API_KEY", "E2B_API_KEY"), hc: &http.Client{}}
	raw := firstEnv("SOULBOX_URL", "E2B_API_URL")
	if raw == "" {
		raw = DefaultURL
	}
	u, err := parseBaseURL(raw)
	if err != nil {
		return nil, err
	}
	c.baseURL = u
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: daemon URL %q must be http(s)://host[:port]", ErrInvalid, raw)
	}
	return u, nil
}

// URL returns the daemon's base URL.
func (c *Client) URL() string { return c.baseURL.String() }

// endpoint joins the base URL and an API path (which may carry a query).
func (c *Client) endpoint(p string, q url.Values) string {
	u := *c.baseURL
	u.Path = strings.TrimRight(u.Path, "/") + p
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends one control-plane request. A non-nil in is sent as JSON; a
// non-nil out receives the JSON answer. Any status outside 2xx becomes an
// *APIError. It returns the response's headers.
func (c *Client) do(ctx context.Context, method, p string, q url.Values, in, out any) (http.Header, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(p, q), body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-API-Key", c.apiKey)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.Header, errorFromResponse(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decoding the answer: %w", method, p, err)
		}
	}
	return resp.Header, nil
}

// seconds converts a timeout to whole seconds, rounding up.
func seconds(d time.Duration) (int64, error) {
	if d < 0 {
		return 0, fmt.Errorf("%w: negative timeout %s", ErrInvalid, d)
	}
	return int64(math.Ceil(d.Seconds())), nil
}

// Limits are SoulBox's per-sandbox resource limits. A zero field takes
// the daemon's default.
type Limits struct {
	CPUs       float64 `json:"cpus,omitempty"`
	MemoryMB   int     `json:"memoryMB,omitempty"`
	DiskSizeMB int     `json:"diskSizeMB,omitempty"`
	Pids       int     `json:"pids,omitempty"`
}

// CreateOptions describe a new sandbox. Every field is optional.
type CreateOptions struct {
	Template  string            // template id; the daemon's default ("host") when empty
	Timeout   time.Duration     // lifetime before the sandbox is killed (or paused); rounded up to seconds
	AutoPause bool              // pause instead of kill when the timeout passes
	Metadata  map[string]string // free-form labels, filterable with List
	Env       map[string]string // environment of every process in the sandbox
	Limits    Limits            // resource limits; zero fields take the daemon's defaults
	// Network gives the sandbox egress (loopback only by default).
	Network bool
	// AllowOut and DenyOut are egress rules (IPv4 CIDRs or addresses; an
	// allowed prefix wins over a denied one); either implies Network.
	// AllowOut may also name domains ("example.com", "*.example.com"):
	// the sandbox then resolves only those through SoulBox's DNS filter,
	// and their addresses are reachable for those names only (HTTP Host
	// and TLS SNI are checked).
	AllowOut, DenyOut []string
}

type networkRequest struct {
	AllowOut []string `json:"allowOut,omitempty"`
	DenyOut  []string `json:"denyOut,omitempty"`
}

type createRequest struct {
	TemplateID string            `json:"templateID,omitempty"`
	Timeout    int64             `json:"timeout,omitempty"`
	AutoPause  bool              `json:"autoPause,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	EnvVars    map[string]string `json:"envVars,omitempty"`
	Limits     *Limits           `json:"limits,omitempty"`
	Internet   bool              `json:"allow_internet_access,omitempty"`
	Network    *networkRequest   `json:"network,omitempty"`
}

// sandboxWire is the daemon's Sandbox object, including the access token
// Info does not expose.
type sandboxWire struct {
	Info
	EnvdAccessToken string `json:"envdAccessToken"`
}

// Create starts a new sandbox and returns it, ready for commands.
func (c *Client) Create(ctx context.Context, opts CreateOptions) (*Sandbox, error) {
	t, err := seconds(opts.Timeout)
	if err != nil {
		return nil, err
	}
	req := createRequest{
		TemplateID: opts.Template,
		Timeout:    t,
		AutoPause:  opts.AutoPause,
		Metadata:   opts.Metadata,
		EnvVars:    opts.Env,
		Internet:   opts.Network || len(opts.AllowOut) > 0 || len(opts.DenyOut) > 0,
	}
	if len(opts.AllowOut) > 0 || len(opts.DenyOut) > 0 {
		req.Network = &networkRequest{AllowOut: opts.AllowOut, DenyOut: opts.DenyOut}
	}
	if opts.Limits != (Limits{}) {
		l := opts.Limits
		req.Limits = &l
	}
	var w sandboxWire
	if _, err := c.do(ctx, http.MethodPost, "/sandboxes", nil, req, &w); err != nil {
		return nil, err
	}
	return c.newSandbox(w), nil
}

// Connect attaches to an existing sandbox, resuming it if it is paused,
// and asks the daemon to keep it alive at least DefaultTimeout from now
// (as E2B's SDKs do).
func (c *Client) Connect(ctx context.Context, id string) (*Sandbox, error) {
	return c.ConnectTimeout(ctx, id, DefaultTimeout)
}

// ConnectTimeout is Connect with a chosen timeout.
func (c *Client) ConnectTimeout(ctx context.Context, id string, timeout time.Duration) (*Sandbox, error) {
	t, err := seconds(timeout)
	if err != nil {
		return nil, err
	}
	var w sandboxWire
	if _, err := c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/connect", nil, map[string]int64{"timeout": t}, &w); err != nil {
		return nil, err
	}
	if w.ID == "" {
		w.ID = id
	}
	return c.newSandbox(w), nil
}

// Get returns a sandbox's current state.
func (c *Client) Get(ctx context.Context, id string) (*Info, error) {
	var info Info
	if _, err := c.do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(id), nil, nil, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

// Kill stops a sandbox and deletes everything in it.
func (c *Client) Kill(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/sandboxes/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// State is a sandbox's lifecycle state.
type State string

// States a sandbox can be listed in.
const (
	StateRunning State = "running"
	StatePaused  State = "paused"
)

// ListOptions filter and page List. Zero values mean "no filter" and the
// daemon's default page size.
type ListOptions struct {
	Metadata  map[string]string // every pair must match
	States    []State
	Limit     int    // page size
	NextToken string // from the previous page
}

// List returns one page of the caller's sandboxes and the token of the
// next page ("" on the last page).
func (c *Client) List(ctx context.Context, opts ListOptions) ([]Info, string, error) {
	q := url.Values{}
	if len(opts.Metadata) > 0 {
		md := url.Values{}
		for k, v := range opts.Metadata {
			md.Set(k, v)
		}
		q.Set("metadata", md.Encode())
	}
	if len(opts.States) > 0 {
		s := make([]string, len(opts.States))
		for i, st := range opts.States {
			s[i] = string(st)
		}
		q.Set("state", strings.Join(s, ","))
	}
	if opts.Limit < 0 {
		return nil, "", fmt.Errorf("%w: negative limit", ErrInvalid)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.NextToken != "" {
		q.Set("nextToken", opts.NextToken)
	}
	var page []Info
	h, err := c.do(ctx, http.MethodGet, "/v2/sandboxes", q, nil, &page)
	if err != nil {
		return nil, "", err
	}
	return page, h.Get("X-Next-Token"), nil
}

// ListAll iterates over every page of List. Iteration stops at the first
// error, which is yielded with a zero Info.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		seen := map[string]bool{}
		for {
			page, next, err := c.List(ctx, opts)
			if err != nil {
				yield(Info{}, err)
				return
			}
			for _, info := range page {
				if !yield(info, nil) {
					return
				}
			}
			if next == "" || len(page) == 0 {
				return
			}
			if seen[next] {
				yield(Info{}, errors.New("the daemon repeated a page token"))
				return
			}
			seen[next] = true
			opts.NextToken = next
		}
	}
}

// Health reports whether the daemon answers GET /health.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.do(ctx, http.MethodGet, "/health", nil, nil, nil)
	return err
}
