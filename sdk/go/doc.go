// Package soulbox is the Go SDK of SoulBox, a self-hosted sandbox for
// running untrusted code with an E2B-compatible API.
//
// A Client talks to one daemon ("soulbox serve") with an API key. It
// creates, lists, pauses, resumes and kills sandboxes through the daemon's
// control plane (REST + JSON). A Sandbox returned by Client.Create or
// Client.Connect reaches the agent inside the sandbox through the same
// daemon address (the data plane, routed by the E2b-Sandbox-Id and
// X-Access-Token headers), with E2B's envd Connect services:
//
//   - Sandbox.Commands runs commands ("/bin/bash -l -c ..."), streams their
//     output to callbacks as it arrives, feeds stdin and sends signals;
//   - Sandbox.PTY runs interactive terminals;
//   - Sandbox.Files reads and writes files as streams, lists, moves,
//     removes and watches them;
//   - Sandbox.DownloadURL and Sandbox.UploadURL make pre-signed file URLs.
//
// Client.CodeService is the daemon's gRPC service for running code
// (execute_code and the judge, soulbox.v1.CodeService), as a connect-go
// client of the code generated in soulboxpb/v1, speaking gRPC, gRPC-Web
// or Connect.
//
// Every call takes a context.Context. Errors wrap the sentinels ErrNotFound,
// ErrAuth, ErrTimeout, ErrConflict and ErrInvalid (test with errors.Is),
// usually through an *APIError carrying the HTTP status or Connect code; a
// command that exits non-zero returns a *CommandExitError (errors.As).
//
// NewClient reads SOULBOX_URL (default http://127.0.0.1:8080) and
// SOULBOX_API_KEY, falling back to E2B_API_URL and E2B_API_KEY; options
// override both.
//
// The package soulboxtest has a fake daemon for testing code that uses
// this SDK.
package soulbox
