package test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestCodeInterpreterPort drives E2B's code-interpreter protocol on port
// 49999 with plain HTTP, as the @e2b/code-interpreter SDK does (its own
// suite is test/e2b/ci): the NDJSON lines of POST /execute, the
// /contexts endpoints, who may do what, and that only sandboxes of the
// code-interpreter-v1 template answer it.
func TestCodeInterpreterPort(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	d := startDaemon(t, dir)
	key := newAPIKey(t, dir, "--e2b")
	c := d.create(key, map[string]any{"templateID": "code-interpreter-v1", "timeout": 300})
	defer d.call(key, "DELETE", "/sandboxes/"+c.SandboxID, nil, nil)

	do := func(t *testing.T, id, token, method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.url+path, strings.NewReader(body))
		req.Header.Set("E2b-Sandbox-Id", id)
		req.Header.Set("E2b-Sandbox-Port", "49999")
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("X-Access-Token", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("execute streams NDJSON lines ending with end_of_execution", func(t *testing.T) {
		req, _ := http.NewRequest("POST", d.url+"/execute", strings.NewReader(`{"code":"print('hi')\n'a' * 3","env_vars":{"X":"1"}}`))
		req.Header.Set("E2b-Sandbox-Id", c.SandboxID)
		req.Header.Set("E2b-Sandbox-Port", "49999")
		req.Header.Set("X-Access-Token", c.EnvdAccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
		var types []string
		var lines []map[string]any
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			types = append(types, m["type"].(string))
			lines = append(lines, m)
		}
		if got, want := strings.Join(types, ","), "stdout,result,number_of_executions,end_of_execution"; got != want {
			t.Fatalf("line types %s, want %s (%v)", got, want, lines)
		}
		if lines[0]["text"] != "hi\n" || lines[0]["timestamp"] == "" {
			t.Errorf("stdout line %v, want text hi and a timestamp", lines[0])
		}
		if lines[1]["text"] != "aaa" || lines[1]["is_main_result"] != true {
			t.Errorf("result line %v, want text aaa, is_main_result", lines[1])
		}
		if lines[2]["execution_count"] != float64(1) {
			t.Errorf("number_of_executions line %v, want 1", lines[2])
		}
	})

	t.Run("contexts: create, list, restart, delete; unknown ones 404", func(t *testing.T) {
		status, body := do(t, c.SandboxID, "", "POST", "/contexts", `{"language":"javascript","cwd":"/tmp"}`)
		var ctx struct{ ID, Language, Cwd string }
		if status != 200 || json.Unmarshal([]byte(body), &ctx) != nil || ctx.Language != "javascript" || ctx.Cwd != "/tmp" || ctx.ID == "" {
			t.Fatalf("create: %d %s", status, body)
		}
		if status, body := do(t, c.SandboxID, "", "GET", "/contexts", ""); status != 200 || !strings.Contains(body, ctx.ID) {
			t.Errorf("list: %d %s, want %s in it", status, body, ctx.ID)
		}
		if status, body := do(t, c.SandboxID, "", "POST", "/contexts/"+ctx.ID+"/restart", ""); status != 200 {
			t.Errorf("restart: %d %s", status, body)
		}
		if status, body := do(t, c.SandboxID, "", "DELETE", "/contexts/"+ctx.ID, ""); status != 200 {
			t.Errorf("delete: %d %s", status, body)
		}
		for _, r := range []struct{ method, path, body string }{
			{"DELETE", "/contexts/" + ctx.ID, ""},
			{"POST", "/contexts/" + ctx.ID + "/restart", ""},
			{"POST", "/execute", `{"code":"1","context_id":"` + ctx.ID + `"}`},
		} {
			if status, body := do(t, c.SandboxID, c.EnvdAccessToken, r.method, r.path, r.body); status != 404 {
				t.Errorf("%s %s after delete: %d %s, want 404", r.method, r.path, status, body)
			}
		}
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			name, token, method, path, body string
			want                            int
		}{
			{"execute without the access token", "", "POST", "/execute", `{"code":"1"}`, 401},
			{"a wrong access token anywhere", "wrong", "GET", "/contexts", ``, 401},
			{"context and language", c.EnvdAccessToken, "POST", "/execute", `{"code":"1","context_id":"x","language":"python"}`, 400},
			{"an unsupported language", "", "POST", "/contexts", `{"language":"cobol"}`, 400},
			{"an unknown path", "", "GET", "/api/kernels", ``, 404},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if status, body := do(t, c.SandboxID, tc.token, tc.method, tc.path, tc.body); status != tc.want {
					t.Errorf("%d %s, want %d", status, body, tc.want)
				}
			})
		}
	})

	t.Run("a sandbox of another template does not answer the protocol", func(t *testing.T) {
		b := d.create(key, map[string]any{"templateID": "base", "timeout": 300})
		defer d.call(key, "DELETE", "/sandboxes/"+b.SandboxID, nil, nil)
		status, body := do(t, b.SandboxID, b.EnvdAccessToken, "GET", "/contexts", "")
		if status != 502 || !strings.Contains(body, "nothing listens on port 49999") {
			t.Errorf("%d %s, want 502 nothing listens", status, body)
		}
	})
}
