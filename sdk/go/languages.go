package soulbox

import (
	"context"
	"net/http"
)

// Language is an entry of the daemon's language registry.
type Language struct {
	Name      string   `json:"name"` // what requests use, e.g. "python"
	Title     string   `json:"title"`
	Aliases   []string `json:"aliases,omitempty"`
	Compiled  bool     `json:"compiled"` // has a compile step (CE on failure)
	Available bool     `json:"available"`
	// Version is the first line its version command prints in a sandbox.
	Version string `json:"version,omitempty"`
	Hint    string `json:"hint,omitempty"` // how to get it, when unavailable
	Note    string `json:"note,omitempty"`
	// Template is the template it runs in (execute_code works only in
	// sandboxes of that template); "" is the host template.
	Template string `json:"template,omitempty"`
	// Source is the file name the source is saved as in /home/user, where
	// Compile (nil for interpreted languages) and Run run; JudgeRun is the
	// judge's run step when it differs from Run (Python: see the judge's
	// documentation).
	Source   string   `json:"source"`
	Compile  []string `json:"compile,omitempty"`
	Run      []string `json:"run"`
	JudgeRun []string `json:"judge_run,omitempty"`
}

// Languages lists the daemon's languages: which can run, with their
// versions, and how to get the others (GET /v1/languages).
func (c *Client) Languages(ctx context.Context) ([]Language, error) {
	var out []Language
	if _, err := c.do(ctx, http.MethodGet, "/v1/languages", nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
