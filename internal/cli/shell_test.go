package cli

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

func TestShell(t *testing.T) {
	fake, id := newFakeSandbox(t)
	t.Setenv("SOULBOX_URL", fake.URL)
	t.Setenv("SOULBOX_API_KEY", fake.APIKey)

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal available: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 100, Rows: 30}); err != nil {
		t.Fatal(err)
	}
	var screen syncBuffer
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := ptmx.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- Main([]string{"shell", id}, tty, tty, &stderr) }()

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			select {
			case code := <-done:
				t.Fatalf("shell exited %d while waiting for %s; stderr %q, screen %q", code, what, stderr.String(), screen.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; screen %q", what, screen.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitUntil("the prompt", func() bool { return strings.Contains(screen.String(), "$ ") })
	req, _ := fake.LastRequest("/process.Process/Start")
	if size := req.Msg.(*pb.StartRequest).GetPty().GetSize(); size.GetCols() != 100 || size.GetRows() != 30 {
		t.Errorf("initial size = %v, want 100x30", size)
	}

	// The local terminal is raw: "\r" reaches the sandbox as typed.
	if _, err := ptmx.Write([]byte("whoami\r")); err != nil {
		t.Fatal(err)
	}
	waitUntil("whoami's output", func() bool { return strings.Contains(screen.String(), "whoami\r\nuser\r\n") })

	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 120, Rows: 40}); err != nil {
		t.Fatal(err)
	}
	waitUntil("the resize", func() bool {
		syscall.Kill(os.Getpid(), syscall.SIGWINCH) // ignored by default; the shell command listens
		req, ok := fake.LastRequest("/process.Process/Update")
		if !ok {
			return false
		}
		size := req.Msg.(*pb.UpdateRequest).GetPty().GetSize()
		return size.GetCols() == 120 && size.GetRows() == 40
	})

	if _, err := ptmx.Write([]byte("exit 3\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 3 {
			t.Errorf("exit = %d, want 3; stderr %q", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shell did not exit")
	}
}
