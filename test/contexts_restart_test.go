package test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCodeContextsSurviveRestart defines variables in code contexts (a
// Python and a JavaScript context of the native API, and the default
// contexts of the code-interpreter port), kills the daemon (SIGKILL, then
// SIGTERM) and starts it again on the same data directory: the contexts
// are listed with the same ids, language and cwd, the variables are still
// defined, and runs that name no context on port 49999 reuse the same
// default contexts. An execution in flight at the SIGKILL is lost and the
// context works afterwards; a tenant's process carrying a kernel's tag is
// not adopted.
func TestCodeContextsSurviveRestart(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	key := newAPIKey(t, dir, "--e2b")
	d := startDaemon(t, dir)
	sb := d.create(key, map[string]any{"templateID": "code-interpreter-v1", "timeout": 600})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	type info struct {
		ID       string `json:"id"`
		Language string `json:"language"`
		Cwd      string `json:"cwd"`
		Alive    bool   `json:"alive"`
	}
	newContext := func(language, cwd string) info {
		t.Helper()
		var i info
		if st := d.call(key, "POST", "/sandboxes/"+sb.SandboxID+"/contexts", map[string]string{"language": language, "cwd": cwd}, &i); st != 201 {
			t.Fatalf("create a %s context: %d", language, st)
		}
		return i
	}
	list := func() []info {
		t.Helper()
		var is []info
		if st := d.call(key, "GET", "/sandboxes/"+sb.SandboxID+"/contexts", nil, &is); st != 200 {
			t.Fatalf("list contexts: %d", st)
		}
		return is
	}
	// run executes code in a native context and returns its main result.
	run := func(t *testing.T, cid, code string) string {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"code": code})
		req, _ := http.NewRequestWithContext(ctx, "POST", d.url+"/sandboxes/"+sb.SandboxID+"/contexts/"+cid+"/execute", strings.NewReader(string(b)))
		req.Header.Set("X-API-Key", key)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("execute %q: %v", code, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var res struct {
			Results []struct {
				Text string `json:"text"`
			} `json:"results"`
			Error *struct{ Name, Value string } `json:"error"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &res) != nil {
			t.Fatalf("execute %q in %s: %d %s", code, cid, resp.StatusCode, body)
		}
		if res.Error != nil || len(res.Results) != 1 {
			t.Fatalf("execute %q in %s: %s", code, cid, body)
		}
		return res.Results[0].Text
	}
	// runCode is the code interpreter's runCode: POST /execute on port
	// 49999; it returns the main result's text.
	runCode := func(t *testing.T, body string) string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "POST", d.url+"/execute", strings.NewReader(body))
		req.Header.Set("E2b-Sandbox-Id", sb.SandboxID)
		req.Header.Set("E2b-Sandbox-Port", "49999")
		req.Header.Set("X-Access-Token", sb.EnvdAccessToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("runCode %s: %v", body, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("runCode %s: %d %s", body, resp.StatusCode, b)
		}
		var text string
		var lines []string
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			var m struct{ Type, Text string }
			if json.Unmarshal(sc.Bytes(), &m) == nil && m.Type == "error" {
				t.Fatalf("runCode %s: %v", body, lines)
			}
			if m.Type == "result" {
				text = m.Text
			}
		}
		return text
	}
	ciContexts := func(t *testing.T) []string {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", d.url+"/contexts", nil)
		req.Header.Set("E2b-Sandbox-Id", sb.SandboxID)
		req.Header.Set("E2b-Sandbox-Port", "49999")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var is []info
		if err := json.NewDecoder(resp.Body).Decode(&is); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /contexts on port 49999: %d %v", resp.StatusCode, err)
		}
		var ids []string
		for _, i := range is {
			ids = append(ids, i.ID)
		}
		return ids
	}

	py := newContext("python", "")
	js := newContext("javascript", "/tmp")
	if got := run(t, py.ID, "x = 41\nx"); got != "41" {
		t.Fatalf("python: %q", got)
	}
	if got := run(t, js.ID, "var y = 'kept'; y.length"); got != "4" {
		t.Fatalf("javascript: %q", got)
	}
	if got := runCode(t, `{"code":"z = 7\nz"}`); got != "7" {
		t.Fatalf("runCode python: %q", got)
	}
	if got := runCode(t, `{"code":"var w = 3; w","language":"js"}`); got != "3" {
		t.Fatalf("runCode javascript: %q", got)
	}
	// A tenant's process with a kernel's tag but not the kernel's
	// command line is not taken for a context.
	d.startBackground(ctx, sb, "soulbox-context-0123456789abcdef-1", "sleep", "1000")
	before := list()
	if len(before) != 4 {
		t.Fatalf("contexts before the restart: %+v, want 4 (two defaults)", before)
	}

	for round, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		inFlight := make(chan struct{})
		if sig == syscall.SIGKILL {
			// An execution in flight when the daemon dies is lost; the
			// context must not wait for it afterwards.
			go func() {
				defer close(inFlight)
				b, _ := json.Marshal(map[string]any{"code": "import time\ntime.sleep(600)"})
				req, _ := http.NewRequestWithContext(ctx, "POST", d.url+"/sandboxes/"+sb.SandboxID+"/contexts/"+py.ID+"/execute", strings.NewReader(string(b)))
				req.Header.Set("X-API-Key", key)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
			time.Sleep(time.Second)
		} else {
			close(inFlight)
		}
		d.stop(sig)
		<-inFlight
		d = startDaemon(t, dir)

		after := list()
		if !slices.Equal(after, before) {
			t.Fatalf("round %d (%v): contexts after the restart:\n%+v\nwant\n%+v", round, sig, after, before)
		}
		start := time.Now()
		if got := run(t, py.ID, "x + 1"); got != "42" {
			t.Fatalf("round %d: python after the restart: %q", round, got)
		}
		t.Logf("round %d (%v): the first execution after the restart took %v", round, sig, time.Since(start))
		if time.Since(start) > 45*time.Second {
			t.Errorf("round %d: the first execution after the restart took %v", round, time.Since(start))
		}
		if got := run(t, js.ID, "y + '!'"); got != "'kept!'" {
			t.Fatalf("round %d: javascript after the restart: %q", round, got)
		}
		if got := runCode(t, `{"code":"z * 6"}`); got != "42" {
			t.Fatalf("round %d: runCode python after the restart: %q", round, got)
		}
		if got := runCode(t, `{"code":"w * 2","language":"javascript"}`); got != "6" {
			t.Fatalf("round %d: runCode javascript after the restart: %q", round, got)
		}
		var want []string
		for _, i := range before {
			want = append(want, i.ID)
		}
		if got := ciContexts(t); !slices.Equal(got, want) {
			t.Fatalf("round %d: port 49999 lists %v, want %v (no new default context)", round, got, want)
		}
	}

	// An adopted context restarts (fresh state, same id) and is deleted
	// like any other.
	if st := d.call(key, "POST", "/sandboxes/"+sb.SandboxID+"/contexts/"+py.ID+"/restart", nil, nil); st != 200 {
		t.Fatalf("restart an adopted context: %d", st)
	}
	if got := run(t, py.ID, "'x' in globals()"); got != "False" {
		t.Fatalf("after restart, x is still defined: %q", got)
	}
	if st := d.call(key, "DELETE", "/sandboxes/"+sb.SandboxID+"/contexts/"+js.ID, nil, nil); st != 204 {
		t.Fatalf("delete an adopted context: %d", st)
	}
	if n := len(list()); n != 3 {
		t.Fatalf("%d contexts after deleting one, want 3", n)
	}
	if st := d.call(key, "DELETE", "/sandboxes/"+sb.SandboxID, nil, nil); st != 204 {
		t.Fatalf("kill: %d", st)
	}
	d.stop(syscall.SIGTERM)
	hostClean(t, dir)
}
