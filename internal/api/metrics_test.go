package api

import (
	"fmt"
	"testing"
	"time"
)

// The sampler forgets sandboxes that are gone instead of growing with
// every sandbox ever measured.
func TestCPUSamplerForgetsGoneSandboxes(t *testing.T) {
	live := map[string]bool{}
	c := cpuSampler{alive: func(id string) bool { return live[id] }}
	now := time.Now()
	for i := range 10000 {
		id := fmt.Sprint(i)
		live[id] = i%100 == 0 // one in a hundred still exists
		c.percent(id, now, time.Second, now.Add(-time.Minute), 1)
	}
	if n := len(c.last); n > 400 {
		t.Fatalf("sampler holds %d entries for ~100 live sandboxes", n)
	}
	if _, ok := c.last["9900"]; !ok {
		t.Fatal("a live sandbox's sample was dropped")
	}
}
