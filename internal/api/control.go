package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/soulbox-dev/soulbox/internal/sandbox"
)

// newSandbox is the body of POST /sandboxes (E2B's NewSandbox, plus
// SoulBox's limits). Fields that change nothing here are accepted and
// ignored, as unknown JSON fields are: secure (every sandbox requires its
// access token). Features a client asks for that
// SoulBox lacks are refused (unsupported), not silently dropped.
type newSandbox struct {
	TemplateID      string `json:"templateID"`
	Timeout         *int64 `json:"timeout"`
	AutoPause       bool   `json:"autoPause"`
	AutoPauseMemory *bool  `json:"autoPauseMemory"`
	AutoResume      *struct {
		Enabled bool `json:"enabled"`
	} `json:"autoResume"`
	Metadata map[string]string `json:"metadata"`
	EnvVars  map[string]string `json:"envVars"`
	Limits   *limitsJSON       `json:"limits"`
	MCP      json.RawMessage   `json:"mcp"`
	Network  *networkJSON      `json:"network"`
	// AllowInternetAccess true gives the sandbox egress (E2B's field).
	AllowInternetAccess *bool             `json:"allow_internet_access"`
	IAM                 json.RawMessage   `json:"iam"`
	VolumeMounts        []json.RawMessage `json:"volumeMounts"`
}

// unsupported names the first feature in b that SoulBox cannot provide.
func (b *newSandbox) unsupported() error {
	if b.Network != nil {
		if err := b.Network.unsupported(); err != nil {
			return err
		}
	}
	switch {
	case b.AutoPauseMemory != nil && !*b.AutoPauseMemory:
		return fmt.Errorf("%w: autoPauseMemory false (pausing to a file-system-only snapshot): paused sandboxes keep their memory", errUnsupported)
	case b.AutoResume != nil && b.AutoResume.Enabled:
		return fmt.Errorf("%w: autoResume (resuming a paused sandbox on traffic): resume it with connect", errUnsupported)
	case present(b.MCP):
		return fmt.Errorf("%w: mcp (the MCP gateway is not in SoulBox's templates)", errUnsupported)
	case present(b.IAM):
		return fmt.Errorf("%w: iam tokens", errUnsupported)
	case len(b.VolumeMounts) > 0:
		return fmt.Errorf("%w: volumeMounts", errUnsupported)
	}
	return nil
}

// present reports whether a JSON value is given and not null or empty.
func present(v json.RawMessage) bool {
	switch strings.TrimSpace(string(v)) {
	case "", "null", "{}", "[]":
		return false
	}
	return true
}

// limitsJSON is SoulBox's extension: the limits of one sandbox.
type limitsJSON struct {
	CPUs       *float64 `json:"cpus,omitempty"`
	MemoryMB   *int64   `json:"memoryMB,omitempty"`
	DiskSizeMB *int64   `json:"diskSizeMB,omitempty"`
	Pids       *int64   `json:"pids,omitempty"`
}

// sandboxJSON is E2B's Sandbox (the answer to create, resume, connect).
type sandboxJSON struct {
	SandboxID          string  `json:"sandboxID"`
	TemplateID         string  `json:"templateID"`
	ClientID           string  `json:"clientID"`
	EnvdVersion        string  `json:"envdVersion"`
	EnvdAccessToken    string  `json:"envdAccessToken,omitempty"`
	TrafficAccessToken *string `json:"trafficAccessToken"`
	Domain             *string `json:"domain"`
}

// detailJSON is E2B's SandboxDetail and ListedSandbox, plus limits.
type detailJSON struct {
	sandboxJSON
	StartedAt  time.Time         `json:"startedAt"`
	EndAt      time.Time         `json:"endAt"`
	CPUCount   int               `json:"cpuCount"`
	MemoryMB   int64             `json:"memoryMB"`
	DiskSizeMB int64             `json:"diskSizeMB"`
	Metadata   map[string]string `json:"metadata"`
	State      sandbox.State     `json:"state"`
	Limits     limitsOut         `json:"limits"`
}

type limitsOut struct {
	CPUs       float64 `json:"cpus"`
	MemoryMB   int64   `json:"memoryMB"`
	DiskSizeMB int64   `json:"diskSizeMB"`
	Pids       int64   `json:"pids"`
}

// clientID is reported where E2B reports the node a sandbox runs on.
const clientID = "soulbox"

func (s *Server) sandboxView(in sandbox.Info, withToken bool) sandboxJSON {
	v := sandboxJSON{SandboxID: in.ID, TemplateID: in.Template, ClientID: clientID, EnvdVersion: EnvdVersion}
	if withToken {
		v.EnvdAccessToken = in.AccessToken
		if in.TrafficAccessToken != "" {
			t := in.TrafficAccessToken
			v.TrafficAccessToken = &t
		}
	}
	if s.cfg.Domain != "" {
		d := s.cfg.Domain
		v.Domain = &d
	}
	return v
}

func (s *Server) detailView(in sandbox.Info, withToken bool) detailJSON {
	return detailJSON{
		sandboxJSON: s.sandboxView(in, withToken),
		StartedAt:   in.StartedAt, EndAt: in.EndAt,
		CPUCount:   int(math.Ceil(in.Limits.CPUs)),
		MemoryMB:   in.Limits.MemoryBytes >> 20,
		DiskSizeMB: in.Limits.DiskBytes >> 20,
		Metadata:   in.Metadata,
		State:      in.State,
		Limits: limitsOut{
			CPUs: in.Limits.CPUs, MemoryMB: in.Limits.MemoryBytes >> 20,
			DiskSizeMB: in.Limits.DiskBytes >> 20, Pids: in.Limits.Pids,
		},
	}
}

// decodeBody reads a JSON body of at most maxJSONBody bytes into v. An
// empty body leaves v unchanged when optional.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF) && optional:
			return nil
		case errors.Is(err, io.EOF):
			return fmt.Errorf("%w: a JSON body is required", errBadRequest)
		default:
			return fmt.Errorf("%w: malformed JSON body: %v", errBadRequest, err)
		}
	}
	if dec.More() {
		return fmt.Errorf("%w: trailing data after the JSON body", errBadRequest)
	}
	return nil
}

// seconds converts a timeout in seconds from a request; nil means unset.
func seconds(v *int64) (time.Duration, error) {
	if v == nil {
		return 0, nil
	}
	if *v <= 0 || *v > int64(math.MaxInt64/time.Second) {
		return 0, fmt.Errorf("%w: timeout must be a positive number of seconds", errBadRequest)
	}
	return time.Duration(*v) * time.Second, nil
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var body newSandbox
	if err := decodeBody(w, r, &body, false); err != nil {
		s.writeErr(w, err)
		return
	}
	if err := body.unsupported(); err != nil {
		s.writeErr(w, err)
		return
	}
	timeout, err := seconds(body.Timeout)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	req := sandbox.CreateRequest{
		Team: teamOf(r), Template: body.TemplateID, Timeout: timeout, AutoPause: body.AutoPause,
		Metadata: body.Metadata, Env: body.EnvVars,
		PrivatePorts: body.Network != nil && body.Network.AllowPublicTraffic != nil && !*body.Network.AllowPublicTraffic,
	}
	if req.Egress, err = egressRules(body.AllowInternetAccess, body.Network); err != nil {
		s.writeErr(w, err)
		return
	}
	if l := body.Limits; l != nil {
		req.Limits.CPUs = l.CPUs
		req.Limits.Pids = l.Pids
		req.Limits.MemoryBytes, err = mib(l.MemoryMB, "memoryMB")
		if err == nil {
			req.Limits.DiskBytes, err = mib(l.DiskSizeMB, "diskSizeMB")
		}
		if err != nil {
			s.writeErr(w, err)
			return
		}
	}
	in, err := s.cfg.Manager.Create(r.Context(), req)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.sandboxView(in, true))
}

func mib(v *int64, name string) (*int64, error) {
	if v == nil {
		return nil, nil
	}
	if *v <= 0 || *v > math.MaxInt64>>20 {
		return nil, fmt.Errorf("%w: %s must be a positive number of MiB", errBadRequest, name)
	}
	b := *v << 20
	return &b, nil
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	in, err := s.cfg.Manager.Get(teamOf(r), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.detailView(in, true))
}

func (s *Server) kill(w http.ResponseWriter, r *http.Request) {
	// The sandbox's code contexts are forgotten through Manager.OnRemoved.
	if err := s.cfg.Manager.Kill(r.Context(), teamOf(r), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type timeoutBody struct {
	Timeout *int64 `json:"timeout"`
}

func (s *Server) setTimeout(w http.ResponseWriter, r *http.Request) {
	var body timeoutBody
	if err := decodeBody(w, r, &body, false); err != nil {
		s.writeErr(w, err)
		return
	}
	if body.Timeout == nil {
		writeError(w, http.StatusBadRequest, "timeout is required")
		return
	}
	d, err := seconds(body.Timeout)
	if err == nil {
		err = s.cfg.Manager.SetTimeout(r.Context(), teamOf(r), r.PathValue("id"), d)
	}
	if err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) pause(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Manager.Pause(r.Context(), teamOf(r), r.PathValue("id")); err != nil {
		s.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) {
	var body timeoutBody
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeErr(w, err)
		return
	}
	d, err := seconds(body.Timeout)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	in, err := s.cfg.Manager.Resume(r.Context(), teamOf(r), r.PathValue("id"), d)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, s.sandboxView(in, true))
}

// connectBody is the body of connect: a timeout, and from newer SDKs
// memory false for onResume "reboot".
type connectBody struct {
	timeoutBody
	Memory *bool `json:"memory"`
}

func (s *Server) connect(w http.ResponseWriter, r *http.Request) {
	var body connectBody
	if err := decodeBody(w, r, &body, true); err != nil {
		s.writeErr(w, err)
		return
	}
	if body.Memory != nil && !*body.Memory {
		s.writeErr(w, fmt.Errorf("%w: onResume \"reboot\" (memory false): a paused sandbox resumes with its memory and processes", errUnsupported))
		return
	}
	d, err := seconds(body.Timeout)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	in, resumed, err := s.cfg.Manager.Connect(r.Context(), teamOf(r), r.PathValue("id"), d)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	status := http.StatusOK
	if resumed {
		status = http.StatusCreated
	}
	writeJSON(w, status, s.sandboxView(in, true))
}

// maxPage is the largest page of GET /v2/sandboxes.
const maxPage = 100

func (s *Server) listV2(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := parseFilter(q)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	// Newest first is the only order; filters SoulBox cannot apply are
	// refused rather than ignored, which would list too much.
	switch {
	case q.Get("order") != "" && !strings.EqualFold(q.Get("order"), "desc"):
		s.writeErr(w, fmt.Errorf("%w: order %q: sandboxes are listed newest first (desc) only", errUnsupported, q.Get("order")))
		return
	case q.Get("startedAfter") != "":
		s.writeErr(w, fmt.Errorf("%w: the startedAfter filter", errUnsupported))
		return
	case q.Get("template") != "":
		s.writeErr(w, fmt.Errorf("%w: the template filter", errUnsupported))
		return
	}
	limit := maxPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit must be an integer in [1, %d]", maxPage))
			return
		}
		limit = n
	}
	page, next, err := s.cfg.Manager.List(teamOf(r), f, limit, q.Get("nextToken"))
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if next != "" {
		w.Header().Set("X-Next-Token", next)
	}
	s.writeList(w, page)
}

// listV1 is the older list: running sandboxes only, unpaginated.
func (s *Server) listV1(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		s.writeErr(w, err)
		return
	}
	f.States = []sandbox.State{sandbox.Running}
	page, _, err := s.cfg.Manager.List(teamOf(r), f, 0, "")
	if err != nil {
		s.writeErr(w, err)
		return
	}
	s.writeList(w, page)
}

func (s *Server) writeList(w http.ResponseWriter, page []sandbox.Info) {
	out := make([]detailJSON, 0, len(page))
	for _, in := range page {
		out = append(out, s.detailView(in, false))
	}
	writeJSON(w, http.StatusOK, out)
}

// parseFilter reads "metadata" (a URL-encoded query string of key=value
// pairs, E2B's format) and "state" (comma-separated, repeatable).
func parseFilter(q url.Values) (sandbox.Filter, error) {
	var f sandbox.Filter
	if m := q.Get("metadata"); m != "" {
		vals, err := url.ParseQuery(m)
		if err != nil {
			return f, fmt.Errorf("%w: metadata filter must look like key1=value1&key2=value2 (URL-encoded): %v", errBadRequest, err)
		}
		f.Metadata = map[string]string{}
		for k, v := range vals {
			f.Metadata[k] = v[len(v)-1]
		}
	}
	for _, v := range q["state"] {
		for _, st := range strings.Split(v, ",") {
			switch sandbox.State(st) {
			case sandbox.Running, sandbox.Paused:
				f.States = append(f.States, sandbox.State(st))
			default:
				return f, fmt.Errorf("%w: unknown state %q (running, paused)", errBadRequest, st)
			}
		}
	}
	return f, nil
}
