package filesystem

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Without CAP_SETUID the kernel ignores setfsuid silently; asUser must
// notice and fail naming the capability. The check runs in a child
// process (this test binary) started as an unprivileged uid.
func TestAsUserFailsWithoutCapability(t *testing.T) {
	if os.Getenv("SOULBOX_FS_CHILD") == "1" {
		err := asUser(User{UID: 4242, GID: 4242, Home: "/"}, func() error { return nil })
		if !errors.Is(err, errIdentity) || !strings.Contains(err.Error(), "CAP_SETUID") {
			t.Fatalf("asUser without CAP_SETUID: %v, want errIdentity naming CAP_SETUID", err)
		}
		return
	}
	requireRoot(t)
	// The go tool's build directory is root-only: run a copy.
	dir, err := os.MkdirTemp("", "soulbox-fs-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "fs.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestAsUserFailsWithoutCapability$", "-test.v")
	cmd.Env = append(os.Environ(), "SOULBOX_FS_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
