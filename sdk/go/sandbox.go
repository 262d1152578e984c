package soulbox

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
	"github.com/soulbox-dev/soulbox/sdk/go/filesig"
)

// Data-plane protocol constants: the headers that route a request through
// the daemon to a sandbox's agent, and the agent's port.
const (
	headerSandboxID   = "E2b-Sandbox-Id"
	headerSandboxPort = "E2b-Sandbox-Port"
	headerAccessToken = "X-Access-Token"
	headerKeepalive   = "Keepalive-Ping-Interval"
	agentPort         = "49983"
	keepaliveSeconds  = "50"

	// queryParamSandbox names the sandbox in a signed file URL, which
	// carries no headers.
	queryParamSandbox = "sandbox_id"
)

// DefaultUser is the sandbox user commands and file operations act as
// unless told otherwise.
const DefaultUser = "user"

// Info is a sandbox as the daemon describes it.
type Info struct {
	ID          string            `json:"sandboxID"`
	TemplateID  string            `json:"templateID"`
	ClientID    string            `json:"clientID,omitempty"`
	StartedAt   time.Time         `json:"startedAt"`
	EndAt       time.Time         `json:"endAt"`
	EnvdVersion string            `json:"envdVersion,omitempty"`
	Domain      *string           `json:"domain"`
	CPUCount    int               `json:"cpuCount,omitempty"`
	MemoryMB    int               `json:"memoryMB,omitempty"`
	DiskSizeMB  int               `json:"diskSizeMB,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	State       State             `json:"state,omitempty"`
	Limits      *Limits           `json:"limits,omitempty"`
}

// Metric is one resource-usage sample of a sandbox.
type Metric struct {
	Timestamp  time.Time
	CPUCount   int
	CPUUsedPct float64
	MemUsed    int64 // bytes
	MemTotal   int64 // bytes
	MemCache   int64 // bytes of page cache, files in the sandbox's tmpfs included
	DiskUsed   int64 // bytes
	DiskTotal  int64 // bytes
}

type metricWire struct {
	TimestampUnix int64   `json:"timestampUnix"`
	CPUCount      int     `json:"cpuCount"`
	CPUUsedPct    float64 `json:"cpuUsedPct"`
	MemUsed       int64   `json:"memUsed"`
	MemTotal      int64   `json:"memTotal"`
	MemCache      int64   `json:"memCache"`
	DiskUsed      int64   `json:"diskUsed"`
	DiskTotal     int64   `json:"diskTotal"`
}

// Sandbox is a handle on one running sandbox: its lifecycle through the
// daemon's control plane, and its processes and files through the data
// plane. It is safe for concurrent use. It owns no resources: dropping it
// leaves the sandbox running until Kill or its timeout.
type Sandbox struct {
	ID          string
	TemplateID  string
	EnvdVersion string

	Commands *Commands
	Files    *Files
	PTY      *PTY

	client      *Client
	accessToken string
	dataURL     string
	dataHTTP    *http.Client
}

func (c *Client) newSandbox(w sandboxWire) *Sandbox {
	s := &Sandbox{
		ID:          w.ID,
		TemplateID:  w.TemplateID,
		EnvdVersion: w.EnvdVersion,
		client:      c,
		accessToken: w.EnvdAccessToken,
		dataURL:     c.baseURL.String(),
	}
	base := c.hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	s.dataHTTP = &http.Client{
		Transport:     &sandboxTransport{base: base, id: w.ID, token: w.EnvdAccessToken},
		CheckRedirect: c.hc.CheckRedirect,
		Jar:           c.hc.Jar,
	}
	proc := processconnect.NewProcessClient(s.dataHTTP, s.dataURL)
	fs := filesystemconnect.NewFilesystemClient(s.dataHTTP, s.dataURL)
	s.Commands = &Commands{sbx: s, rpc: proc}
	s.PTY = &PTY{sbx: s, rpc: proc}
	s.Files = &Files{sbx: s, rpc: fs, user: DefaultUser}
	return s
}

// sandboxTransport adds the headers that route a request to one sandbox.
type sandboxTransport struct {
	base  http.RoundTripper
	id    string
	token string
}

func (t *sandboxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set(headerSandboxID, t.id)
	r.Header.Set(headerSandboxPort, agentPort)
	if t.token != "" {
		r.Header.Set(headerAccessToken, t.token)
	}
	return t.base.RoundTrip(r)
}

// withUser sets the Basic authorization the agent reads the acting user
// from, as E2B's SDKs do: base64("user:").
func withUser[T any](req *connect.Request[T], user string) *connect.Request[T] {
	if user == "" {
		user = DefaultUser
	}
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	return req
}

// Info returns the sandbox's current state.
func (s *Sandbox) Info(ctx context.Context) (*Info, error) { return s.client.Get(ctx, s.ID) }

// Kill stops the sandbox and deletes everything in it.
func (s *Sandbox) Kill(ctx context.Context) error { return s.client.Kill(ctx, s.ID) }

// Pause freezes the sandbox; ErrConflict if it already is paused.
func (s *Sandbox) Pause(ctx context.Context) error { return s.client.Pause(ctx, s.ID) }

// Resume resumes the paused sandbox; see Client.Resume.
func (s *Sandbox) Resume(ctx context.Context, timeout time.Duration) error {
	return s.client.Resume(ctx, s.ID, timeout)
}

// SetTimeout makes the sandbox end d from now.
func (s *Sandbox) SetTimeout(ctx context.Context, d time.Duration) error {
	return s.client.SetTimeout(ctx, s.ID, d)
}

// Metrics returns the sandbox's recent resource-usage samples.
func (s *Sandbox) Metrics(ctx context.Context) ([]Metric, error) { return s.client.Metrics(ctx, s.ID) }

// Pause freezes a sandbox: its processes stop, its files stay. It is
// ErrConflict if the sandbox already is paused.
func (c *Client) Pause(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/pause", nil, nil, nil)
	return err
}

// Resume resumes a paused sandbox to run for timeout from now (zero: the
// daemon's default). It is ErrConflict if the sandbox is not paused.
func (c *Client) Resume(ctx context.Context, id string, timeout time.Duration) error {
	t, err := seconds(timeout)
	if err != nil {
		return err
	}
	body := map[string]int64{}
	if t > 0 {
		body["timeout"] = t
	}
	_, err = c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/resume", nil, body, nil)
	return err
}

// SetTimeout makes a sandbox end d from now.
func (c *Client) SetTimeout(ctx context.Context, id string, d time.Duration) error {
	t, err := seconds(d)
	if err != nil {
		return err
	}
	if t == 0 {
		return fmt.Errorf("%w: zero timeout", ErrInvalid)
	}
	_, err = c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/timeout", nil, map[string]int64{"timeout": t}, nil)
	return err
}

// Metrics returns a sandbox's recent resource-usage samples.
func (c *Client) Metrics(ctx context.Context, id string) ([]Metric, error) {
	var wire []metricWire
	if _, err := c.do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(id)+"/metrics", nil, nil, &wire); err != nil {
		return nil, err
	}
	ms := make([]Metric, len(wire))
	for i, w := range wire {
		ms[i] = Metric{
			Timestamp: time.Unix(w.TimestampUnix, 0), CPUCount: w.CPUCount, CPUUsedPct: w.CPUUsedPct,
			MemUsed: w.MemUsed, MemTotal: w.MemTotal, MemCache: w.MemCache, DiskUsed: w.DiskUsed, DiskTotal: w.DiskTotal,
		}
	}
	return ms, nil
}

// URLOptions configure a signed file URL.
type URLOptions struct {
	User    string        // the sandbox user the operation acts as; DefaultUser when empty
	Expires time.Duration // validity from now; zero for a URL that never expires
}

// DownloadURL returns a URL from which anyone can GET the file at path
// without headers or API key (until it expires). It is signed with the
// sandbox's access token.
func (s *Sandbox) DownloadURL(path string, opts URLOptions) string {
	return s.signedURL(path, filesig.Read, opts)
}

// UploadURL returns a URL to which anyone can POST the file at path
// (as an application/octet-stream or multipart body).
func (s *Sandbox) UploadURL(path string, opts URLOptions) string {
	return s.signedURL(path, filesig.Write, opts)
}

func (s *Sandbox) signedURL(path, op string, opts URLOptions) string {
	user := opts.User
	if user == "" {
		user = DefaultUser
	}
	var exp time.Time
	if opts.Expires > 0 {
		exp = time.Now().Add(opts.Expires)
	}
	q := url.Values{}
	q.Set("path", path)
	q.Set("username", user)
	q.Set("signature", filesig.Sign(path, op, user, s.accessToken, exp))
	if !exp.IsZero() {
		q.Set("signature_expiration", strconv.FormatInt(exp.Unix(), 10))
	}
	q.Set(queryParamSandbox, s.ID)
	return s.client.endpoint("/files", q)
}
