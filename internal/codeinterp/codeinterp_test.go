package codeinterp

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/soulbox-dev/soulbox/internal/execute"
)

func TestNormalizeLanguage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "python"}, {"python", "python"}, {" Python ", "python"}, {"js", "javascript"}, {"JavaScript", "javascript"},
	} {
		got, err := normalizeLanguage(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("normalizeLanguage(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := normalizeLanguage("klingon"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("normalizeLanguage(klingon): got %v, want ErrBadRequest", err)
	}
}

func TestResultFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   execute.KernelResult
		want string
	}{
		{"a string loses its repr quotes", execute.KernelResult{Text: "'hi'", IsMainResult: true}, `{"type":"result","text":"hi","is_main_result":true}`},
		{"double quotes too", execute.KernelResult{Text: `"hi"`}, `{"type":"result","text":"hi","is_main_result":false}`},
		{"a lone quote stays", execute.KernelResult{Text: "'"}, `{"type":"result","text":"'","is_main_result":false}`},
		{"a number stays", execute.KernelResult{Text: "42"}, `{"type":"result","text":"42","is_main_result":false}`},
		{"a DataFrame's data is by column", execute.KernelResult{Text: "df", HTML: "<table/>",
			Data: json.RawMessage(`{"columns":["a","b",3],"index":[0,1],"data":[[1,"x",true],[2,"y"]]}`)},
			`{"type":"result","text":"df","html":"\u003ctable/\u003e","data":{"a":[1,2],"b":["x","y"],"3":[true,null]},"is_main_result":false}`},
		{"data of another shape is dropped", execute.KernelResult{PNG: "AA==", Data: json.RawMessage(`[1,2]`)}, `{"type":"result","png":"AA==","is_main_result":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(resultOf(&tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestStreamLines(t *testing.T) {
	rec := httptest.NewRecorder()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	st := &stream{w: rec, rc: http.NewResponseController(rec), now: func() time.Time { return now }}
	st.start()
	for _, ev := range []execute.ContextEvent{
		{Type: "stdout", Text: "out\n"},
		{Type: "stderr", Text: "err\n"},
		{Type: "error", Error: &execute.KernelError{Name: "ValueError", Value: "v", Traceback: "tb"}},
		{Type: "end", ExecutionCount: 3},
		{Type: "stdout", Text: "after the end: dropped"},
	} {
		st.event(ev)
	}
	want := []string{
		`{"type":"stdout","text":"out\n","timestamp":"2026-01-02T03:04:05.000006Z"}`,
		`{"type":"stderr","text":"err\n","timestamp":"2026-01-02T03:04:05.000006Z"}`,
		`{"type":"error","name":"ValueError","value":"v","traceback":"tb"}`,
		`{"type":"number_of_executions","execution_count":3}`,
		`{"type":"end_of_execution"}`,
	}
	got := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q, want application/x-ndjson", ct)
	}
}

// TestRefusals covers what is answered before any kernel is involved.
func TestRefusals(t *testing.T) {
	var gotErr error
	s := New(Config{Contexts: execute.NewContexts(), WriteError: func(w http.ResponseWriter, err error) {
		gotErr = err
		w.WriteHeader(http.StatusTeapot)
	}})
	for _, tc := range []struct {
		name, method, path, body string
		canExecute               bool
		want                     error
	}{
		{"context and language", "POST", "/execute", `{"code":"1","context_id":"x","language":"python"}`, true, ErrBadRequest},
		{"no access token", "POST", "/execute", `{"code":"1"}`, false, ErrUnauthorized},
		{"malformed body", "POST", "/execute", `{"code":`, true, ErrBadRequest},
		{"bad env", "POST", "/execute", `{"code":"1","context_id":"x","env_vars":{"A=B":"c"}}`, true, execute.ErrBadRequest},
		{"unknown context", "POST", "/execute", `{"code":"1","context_id":"nope"}`, true, execute.ErrContextNotFound},
		{"unknown language", "POST", "/contexts", `{"language":"cobol"}`, false, ErrBadRequest},
		{"restart unknown", "POST", "/contexts/nope/restart", ``, false, execute.ErrContextNotFound},
		{"delete unknown", "DELETE", "/contexts/nope", ``, false, execute.ErrContextNotFound},
		{"unknown path", "GET", "/kernels", ``, false, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gotErr = nil
			rec := httptest.NewRecorder()
			s.Serve(rec, httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body)), Sandbox{ID: "sb", CanExecute: tc.canExecute})
			if !errors.Is(gotErr, tc.want) {
				t.Errorf("error %v, want %v", gotErr, tc.want)
			}
		})
	}
	rec := httptest.NewRecorder()
	s.Serve(rec, httptest.NewRequest("GET", "/contexts", nil), Sandbox{ID: "sb"})
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("GET /contexts: %d %q, want 200 []", rec.Code, rec.Body.String())
	}
}
