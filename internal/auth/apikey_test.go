package auth

import (
	"bytes"
	"strings"
	"testing"
)

func TestNewAPIKeyShapes(t *testing.T) {
	for _, prefix := range []string{PrefixSoulBox, PrefixE2B} {
		k, err := NewAPIKey(prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k, prefix) || CheckAPIKey(k) != nil {
			t.Errorf("NewAPIKey(%q) = %q: not a well-formed key", prefix, k)
		}
		k2, _ := NewAPIKey(prefix)
		if k == k2 {
			t.Errorf("two keys are equal: %q", k)
		}
	}
	if _, err := NewAPIKey("xx_"); err == nil {
		t.Error("unknown prefix accepted")
	}
}

func TestCheckAPIKey(t *testing.T) {
	good := "e2b_" + strings.Repeat("ab", 20)
	for key, ok := range map[string]bool{
		good: true, "sb_" + strings.Repeat("0f", 20): true,
		"": false, "e2b_": false, "e2b_" + strings.Repeat("AB", 20): false, good + "0": false,
		good[:len(good)-1]: false, "xx_" + strings.Repeat("ab", 20): false, "e2b_" + strings.Repeat("zz", 20): false,
	} {
		if got := CheckAPIKey(key) == nil; got != ok {
			t.Errorf("CheckAPIKey(%q) ok=%v, want %v", key, got, ok)
		}
	}
}

func TestHashAndHint(t *testing.T) {
	k := "sb_" + strings.Repeat("12", 20)
	if !bytes.Equal(HashAPIKey(k), HashAPIKey(k)) || bytes.Equal(HashAPIKey(k), HashAPIKey(k+"x")) {
		t.Error("hash is not a function of the key")
	}
	if got := Hint(k); got != "sb_121212…" {
		t.Errorf("Hint = %q", got)
	}
	if got := Hint("x"); got != "?" {
		t.Errorf("Hint of garbage = %q", got)
	}
}
