package server

import (
	"os/exec"
	"os/signal"
	"testing"
	"time"
)

// TestReaperKeepsEarlyExits: a child that ends before the reaper's loop
// first runs is still reaped and its status handed over (the agent starts
// serving, and so starting processes, while that loop may not have run
// yet; a lost SIGCHLD left the command's stream open forever).
func TestReaperKeepsEarlyExits(t *testing.T) {
	r := newReaper()
	defer signal.Stop(r.sigs)
	wait, err := r.Launch(func() (int, error) {
		cmd := exec.Command("/bin/sh", "-c", "exit 7")
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		pid := cmd.Process.Pid
		cmd.Process.Release()
		return pid, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the child has ended by now
	go r.run()
	got := make(chan int, 1)
	go func() { got <- wait().ExitStatus() }()
	select {
	case code := <-got:
		if code != 7 {
			t.Fatalf("exit status %d, want 7", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the child's end was never handed to its waiter")
	}
}
