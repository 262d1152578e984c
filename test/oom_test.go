package test

import (
	"context"
	"testing"
	"time"

	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// TestLongLivedSurvivesOOM: a command that runs a long-lived sandbox out
// of memory is killed, and the sandbox — its agent, its other processes,
// its files — goes on (on cgroup v2 the sandbox's cgroup kills one victim,
// not the whole group; on v1 it always did).
func TestLongLivedSurvivesOOM(t *testing.T) {
	requireRoot(t)
	_, c := sdkDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sbx, err := c.Create(ctx, soulbox.CreateOptions{Limits: soulbox.Limits{MemoryMB: 128}})
	if err != nil {
		t.Fatal(err)
	}
	defer sbx.Kill(ctx)
	sleeper, err := sbx.Commands.StartArgv(ctx, []string{"sleep", "600"})
	if err != nil {
		t.Fatal(err)
	}
	defer sleeper.Kill(ctx)
	if _, err := sbx.Commands.Run(ctx, "echo kept > /tmp/kept"); err != nil {
		t.Fatal(err)
	}
	res, err := sbx.Commands.Run(ctx, `python3 -c "b = bytearray(512 << 20)"`)
	if err == nil && res.ExitCode == 0 {
		t.Fatalf("512 MiB under 128 MiB: %+v, want the command killed", res)
	}
	out, err := sbx.Commands.Run(ctx, "cat /tmp/kept; pgrep -x sleep >/dev/null && echo sleeper")
	if err != nil || out.Stdout != "kept\nsleeper\n" {
		t.Fatalf("after the OOM kill: %+v, %v; want the sandbox, its files and its other processes alive", out, err)
	}
}
