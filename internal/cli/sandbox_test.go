package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/soulbox-dev/soulbox/sdk/go/soulboxtest"
)

func TestSandboxCommands(t *testing.T) {
	fake := soulboxtest.NewFakeServer(t)

	res := runCLI(t, fake, "", "sandbox", "create", "--template", "host", "--timeout", "5m", "--memory", "1G",
		"--cpus", "1.5", "--disk", "2G", "--pids", "64", "--metadata", "owner=me", "--metadata", "job=a=b",
		"--env", "A=1", "--auto-pause")
	if res.code != 0 {
		t.Fatalf("create: exit %d, stderr %q", res.code, res.stderr)
	}
	id := lastLine(res.stdout)
	req, _ := fake.LastRequest("/sandboxes")
	var body map[string]any
	if err := json.Unmarshal(req.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"templateID": "host", "timeout": float64(300), "autoPause": true,
		"metadata": map[string]any{"owner": "me", "job": "a=b"},
		"envVars":  map[string]any{"A": "1"},
		"limits":   map[string]any{"cpus": 1.5, "memoryMB": float64(1024), "diskSizeMB": float64(2048), "pids": float64(64)},
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("create body = %v\nwant %v", body, want)
	}

	res = runCLI(t, fake, "", "sandbox", "create", "--json")
	var created map[string]string
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil || created["sandboxID"] == "" {
		t.Fatalf("create --json = %q, %v", res.stdout, err)
	}
	other := created["sandboxID"]

	res = runCLI(t, fake, "", "sandbox", "ls")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "ID") || !strings.Contains(res.stdout, id) ||
		!strings.Contains(res.stdout, "job=a=b,owner=me") || !strings.Contains(res.stdout, other) {
		t.Errorf("ls: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, fake, "", "sandbox", "ls", "--metadata", "owner=me", "--state", "running", "--json")
	var listed []map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &listed); err != nil || len(listed) != 1 || listed[0]["sandboxID"] != id {
		t.Errorf("ls --json = %s, %v", res.stdout, err)
	}
	req, _ = fake.LastRequest("/v2/sandboxes")
	if req.Query.Get("metadata") != "owner=me" || req.Query.Get("state") != "running" {
		t.Errorf("ls query = %v", req.Query)
	}

	res = runCLI(t, fake, "", "sandbox", "pause", id)
	if res.code != 0 {
		t.Fatalf("pause: %d %s", res.code, res.stderr)
	}
	res = runCLI(t, fake, "", "sandbox", "pause", id)
	if res.code != exitFailure || !strings.Contains(res.stderr, "409") {
		t.Errorf("pause twice: %d %q", res.code, res.stderr)
	}
	res = runCLI(t, fake, "", "sandbox", "info", id)
	if res.code != 0 || !strings.Contains(res.stdout, "paused") || !strings.Contains(res.stdout, "memory=1024M") {
		t.Errorf("info: %d\n%s", res.code, res.stdout)
	}
	res = runCLI(t, fake, "", "sandbox", "resume", id, "--timeout", "2m")
	if res.code != 0 {
		t.Fatalf("resume: %d %s", res.code, res.stderr)
	}
	req, _ = fake.LastRequest("/sandboxes/" + id + "/resume")
	if string(req.Body) != `{"timeout":120}` {
		t.Errorf("resume body = %s", req.Body)
	}
	res = runCLI(t, fake, "", "sandbox", "timeout", id, "90s")
	if res.code != 0 {
		t.Fatalf("timeout: %d %s", res.code, res.stderr)
	}
	res = runCLI(t, fake, "", "sandbox", "info", "--json", id)
	var info map[string]any
	if err := json.Unmarshal([]byte(res.stdout), &info); err != nil || info["state"] != "running" || info["sandboxID"] != id {
		t.Errorf("info --json = %s, %v", res.stdout, err)
	}
	if _, ok := info["envdAccessToken"]; ok {
		t.Error("info --json shows the access token")
	}

	res = runCLI(t, fake, "", "sandbox", "kill", id, "nosuch", other)
	if res.code != exitFailure || !strings.Contains(res.stderr, "kill nosuch") || res.stdout != id+"\n"+other+"\n" {
		t.Errorf("kill: %d stdout %q stderr %q", res.code, res.stdout, res.stderr)
	}
	res = runCLI(t, fake, "", "sandbox", "info", id)
	if res.code != exitFailure || !strings.Contains(res.stderr, "not found") {
		t.Errorf("info after kill: %d %q", res.code, res.stderr)
	}
}
