package test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestE2BSDKs drives the unmodified E2B SDKs (JS 2.14.1, 2.50.0, 2.51.0,
// Python 2.63.0 and the code-interpreter JS SDK 2.8.0, pinned under
// test/e2b) against a daemon, through
// test/e2b/run.sh, one subtest per SDK version. It needs Node.js, npm
// and Python 3.11 (and, the first time, the npm and PyPI registries):
// without them it skips, naming what is missing, except under CI=true
// where it fails.
func TestE2BSDKs(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		// The suite is about the API, not the kernel: the host run covers
		// it; the -short run in the emulated cgroup v2 guest leaves it out.
		t.Skip("-short: the E2B SDK suites run in the host suite only")
	}
	var missing []string
	for _, tool := range []string{"node", "npm", "python3", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := "the E2B SDK suites need " + strings.Join(missing, ", ")
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + ", and CI=true: failing instead of skipping")
		}
		t.Skip(msg)
	}
	dir := dataDir(t)
	d := startDaemon(t, dir)
	key := newAPIKey(t, dir, "--e2b")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	for _, suite := range []string{"js/2.14.1", "js/2.50.0", "js/2.51.0", "ci/2.8.0", "py"} {
		t.Run(suite, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, "e2b/run.sh", suite)
			cmd.Env = append(os.Environ(), "SOULBOX_E2B_URL="+d.url, "SOULBOX_E2B_KEY="+key)
			cmd.WaitDelay = 10 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("test/e2b/run.sh %s: %v\n%s", suite, err, out)
			}
			if testing.Verbose() {
				t.Logf("%s", out)
			}
		})
	}
	// Every suite kills what it creates.
	var left []map[string]any
	if st := d.call(key, "GET", "/v2/sandboxes", nil, &left); st != 200 || len(left) != 0 {
		t.Errorf("after the SDK suites: status %d, %d sandboxes left, want none", st, len(left))
	}
}
