package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOpenAPIDocumentsEveryRoute: the served document is valid JSON and
// names every control-plane route with its method.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	s := New(Config{})
	if len(s.patterns) < 10 {
		t.Fatalf("only %d routes registered", len(s.patterns))
	}
	for _, p := range s.patterns {
		method, path, _ := strings.Cut(p, " ")
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("%s is not in openapi.json", path)
			continue
		}
		if _, ok := ops[strings.ToLower(method)]; !ok {
			t.Errorf("%s %s is not in openapi.json", method, path)
		}
	}
}
