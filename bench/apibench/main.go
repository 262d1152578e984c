// Command apibench measures a running SoulBox daemon through its HTTP API,
// as a client on the same host would see it:
//
//   - create: POST /sandboxes, then a command's first output (p50, p95)
//   - exec: `true` in an existing sandbox, start to exit event (p50, p95)
//   - idle memory: MemAvailable drop per idle sandbox with N alive
//
// It prints one JSON object. Usage:
//
//	apibench -url http://127.0.0.1:8080 -key sb_... [-runs 200] [-idle 500]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/bench/internal/daemonclient"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

var (
	baseURL = flag.String("url", "http://127.0.0.1:8080", "daemon URL")
	apiKey  = flag.String("key", os.Getenv("SOULBOX_API_KEY"), "API key")
	runs    = flag.Int("runs", 200, "runs of the create and exec measurements")
	idle    = flag.Int("idle", 500, "idle sandboxes for the memory measurement (0: skip)")
)

type sandbox = daemonclient.Sandbox

var client *daemonclient.Client

func api(method, path string, body, out any) error { return client.Call(method, path, body, out) }

// run starts cmd and returns when the first output (firstOutput) or the
// end event arrives.
func run(ctx context.Context, sb sandbox, firstOutput bool, args ...string) error {
	s, err := client.Processes(sb).Start(ctx, connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: args[0], Args: args[1:]}}))
	if err != nil {
		return err
	}
	defer s.Close()
	for s.Receive() {
		ev := s.Msg().GetEvent()
		if firstOutput && len(ev.GetData().GetStdout()) > 0 {
			return nil
		}
		if e := ev.GetEnd(); e != nil {
			if e.GetExitCode() != 0 {
				return fmt.Errorf("%v exited %d", args, e.GetExitCode())
			}
			return nil
		}
	}
	if err := s.Err(); err != nil {
		return err
	}
	return errors.New("stream ended without the awaited event")
}

type stats struct {
	Runs int     `json:"runs"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	Mean float64 `json:"mean_ms"`
	Min  float64 `json:"min_ms"`
}

func summarize(d []time.Duration) stats {
	slices.Sort(d)
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return stats{Runs: len(d), P50: ms(d[len(d)/2]), P95: ms(d[len(d)*95/100]), Mean: ms(sum / time.Duration(len(d))), Min: ms(d[0])}
}

func memAvailable() int64 {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

func main() {
	flag.Parse()
	client = daemonclient.New(*baseURL, *apiKey)
	ctx := context.Background()
	out := map[string]any{}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "apibench:", err)
		os.Exit(1)
	}
	create := func() sandbox {
		var sb sandbox
		if err := api("POST", "/sandboxes", map[string]any{"timeout": 600}, &sb); err != nil {
			fail(err)
		}
		return sb
	}
	kill := func(sb sandbox) {
		if err := api("DELETE", "/sandboxes/"+sb.ID, nil, nil); err != nil {
			fail(err)
		}
	}
	// Warm-up.
	w := create()
	if err := run(ctx, w, false, "true"); err != nil {
		fail(err)
	}
	kill(w)

	var createTimes []time.Duration
	for range *runs {
		t0 := time.Now()
		sb := create()
		if err := run(ctx, sb, true, "echo", "ready"); err != nil {
			fail(err)
		}
		createTimes = append(createTimes, time.Since(t0))
		kill(sb)
	}
	out["create_to_first_output"] = summarize(createTimes)

	sb := create()
	var execTimes []time.Duration
	for range *runs {
		t0 := time.Now()
		if err := run(ctx, sb, false, "true"); err != nil {
			fail(err)
		}
		execTimes = append(execTimes, time.Since(t0))
	}
	out["exec_true"] = summarize(execTimes)
	kill(sb)

	if *idle > 0 {
		time.Sleep(2 * time.Second)
		before := memAvailable()
		boxes := make([]sandbox, *idle)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		for i := range boxes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				boxes[i] = create()
				<-sem
			}()
		}
		wg.Wait()
		time.Sleep(5 * time.Second) // let the agents settle
		after := memAvailable()
		out["idle_memory"] = map[string]any{
			"sandboxes":             *idle,
			"mem_available_drop_mb": float64(before-after) / (1 << 20),
			"per_sandbox_mib":       float64(before-after) / float64(*idle) / (1 << 20),
		}
		for _, b := range boxes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				kill(b)
				<-sem
			}()
		}
		wg.Wait()
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(out)
}
