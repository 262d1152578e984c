package execute

import (
	"strings"
	"testing"
)

func TestParseKernelLine(t *testing.T) {
	for _, tc := range []struct {
		line, id, typ string
		check         func(ContextEvent) bool
		bad           bool
	}{
		{line: `{"id":"a","type":"stdout","text":"hi\n"}`, id: "a", typ: "stdout", check: func(e ContextEvent) bool { return e.Text == "hi\n" }},
		{line: `{"id":"a","type":"end","execution_count":3}`, id: "a", typ: "end", check: func(e ContextEvent) bool { return e.ExecutionCount == 3 }},
		{line: `{"id":"a","type":"end","execution_count":-3}`, id: "a", typ: "end", check: func(e ContextEvent) bool { return e.ExecutionCount == 0 }},
		{line: `{"id":"b","type":"error","name":"E","value":"v","traceback":"tb"}`, id: "b", typ: "error",
			check: func(e ContextEvent) bool {
				return e.Error.Name == "E" && e.Error.Value == "v" && e.Error.Traceback == "tb"
			}},
		{line: `{"id":"c","type":"result","main":true,"data":{"text/plain":"42","text/html":"<b>","image/png":"iVBORw0K","application/json":{"columns": ["a"]}}}`, id: "c", typ: "result",
			check: func(e ContextEvent) bool {
				r := e.Result
				return r.IsMainResult && r.Text == "42" && r.HTML == "<b>" && r.PNG == "iVBORw0K" && string(r.Data) == `{"columns":["a"]}`
			}},
		// Stray output is stdout, not an error.
		{line: `not json`, typ: "stdout", check: func(e ContextEvent) bool { return e.Text == "not json\n" }},
		{line: `{"x":1}`, typ: "stdout"},
		{line: "\xff\xfe", typ: "stdout", check: func(e ContextEvent) bool { return strings.ContainsRune(e.Text, '\uFFFD') }},
		{line: `{"id":"c","type":"result","data":{"image/png":"!!notbase64"}}`, bad: true},
		{line: `{"id":"c","type":"result","data":{"text/plain":7}}`, bad: true},
		{line: `{"id":"c","type":"launch"}`, bad: true},
	} {
		id, ev, err := parseKernelLine([]byte(tc.line))
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted", tc.line)
			}
			continue
		}
		if err != nil || id != tc.id || ev.Type != tc.typ || (tc.check != nil && !tc.check(ev)) {
			t.Errorf("%s: %q %+v %v", tc.line, id, ev, err)
		}
	}
	if _, _, err := parseKernelLine(make([]byte, MaxKernelLine+1)); err == nil {
		t.Error("an overlong line was accepted")
	}
}

func TestLineSplitter(t *testing.T) {
	s := lineSplitter{max: 8}
	var lines []string
	overs := 0
	feed := func(b string) {
		s.feed([]byte(b), func(l []byte) { lines = append(lines, string(l)) }, func() { overs++ })
	}
	feed("ab")
	feed("c\nde\n")
	feed("0123456789")
	feed("abc\nok\n")
	feed("12345678\n")
	if got := strings.Join(lines, "|"); got != "abc|de|ok|12345678" || overs != 1 {
		t.Fatalf("%q, %d over", got, overs)
	}
}

func FuzzParseKernelLine(f *testing.F) {
	f.Add([]byte(`{"id":"c","type":"result","data":{"text/plain":"1"}}`))
	f.Add([]byte(`{"type":"error","name":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ev, err := parseKernelLine(b)
		if err == nil && ev.Type == "" {
			t.Fatal("an event without a type")
		}
	})
}
