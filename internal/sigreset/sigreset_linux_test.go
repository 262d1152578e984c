package sigreset

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestResetIgnored runs itself as a child that starts with SIGHUP ignored
// (as nohup leaves it; the Go runtime keeps an ignored SIGHUP ignored),
// resets it and checks that a program it execs starts with nothing
// ignored.
func TestResetIgnored(t *testing.T) {
	if os.Getenv("SIGRESET_CHILD") == "1" {
		changed, err := ResetIgnored()
		if err != nil {
			t.Fatal(err)
		}
		if len(changed) == 0 {
			t.Fatal("nothing was ignored in the child")
		}
		out, err := exec.Command("grep", "^SigIgn", "/proc/self/status").Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "SigIgn:\t0000000000000000" {
			t.Fatalf("a program started after the reset: %q", got)
		}
		return
	}
	// Ignore the signals in a shell, which then execs the test binary.
	cmd := exec.Command("sh", "-c", `trap '' HUP; exec "$0" -test.run '^TestResetIgnored$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "SIGRESET_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
