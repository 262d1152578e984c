// Command netbench measures SoulBox networking through a running daemon
// (started with --pool 0, so every create is cold):
//
//   - egress cost: p50 and p95 of POST /sandboxes with and without
//     allow_internet_access, interleaved (the difference is the cost of
//     the veth, addresses, route and nftables rules), with one sandbox
//     with egress alive throughout (the table exists);
//   - exposed-port throughput: a file served by python3 -m http.server
//     inside a sandbox, fetched through the daemon's port proxy from the
//     host, against curl fetching it directly inside the sandbox.
//
// It prints one JSON object. Usage:
//
//	netbench -url http://127.0.0.1:8080 -key sb_... [-runs 100] [-mb 256]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/soulbox-dev/soulbox/bench/internal/daemonclient"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
)

var (
	baseURL = flag.String("url", "http://127.0.0.1:8080", "daemon URL")
	apiKey  = flag.String("key", os.Getenv("SOULBOX_API_KEY"), "API key")
	runs    = flag.Int("runs", 100, "creates of each kind")
	sizeMB  = flag.Int("mb", 256, "size of the file fetched through the port proxy")
)

type sandbox = daemonclient.Sandbox

var client *daemonclient.Client

func api(method, path string, body, out any) error { return client.Call(method, path, body, out) }

// run runs a shell command in the sandbox and returns its output.
func run(s sandbox, cmd string, wait bool) (string, error) {
	st, err := client.Processes(s).Start(context.Background(), connect.NewRequest(&pb.StartRequest{Process: &pb.ProcessConfig{Cmd: "/bin/sh", Args: []string{"-c", cmd}}}))
	if err != nil {
		return "", err
	}
	defer st.Close()
	var out strings.Builder
	for st.Receive() {
		ev := st.Msg().GetEvent()
		out.Write(ev.GetData().GetStdout())
		out.Write(ev.GetData().GetStderr())
		if !wait && ev.GetStart() != nil {
			return "", nil
		}
	}
	return out.String(), st.Err()
}

func pct(d []time.Duration, p float64) float64 {
	slices.Sort(d)
	return float64(d[int(float64(len(d)-1)*p)].Microseconds()) / 1000
}

func main() {
	flag.Parse()
	client = daemonclient.New(*baseURL, *apiKey)
	res := map[string]any{}
	// One sandbox with egress stays alive throughout, as on a busy host:
	// the nftables table exists already (its creation is paid once).
	var keeper sandbox
	if err := api("POST", "/sandboxes", map[string]any{"timeout": 600, "allow_internet_access": true}, &keeper); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer api("DELETE", "/sandboxes/"+keeper.ID, nil, nil)
	var plain, egress []time.Duration
	for i := 0; i < *runs; i++ {
		for _, net := range []bool{false, true} {
			var s sandbox
			t0 := time.Now()
			if err := api("POST", "/sandboxes", map[string]any{"timeout": 60, "allow_internet_access": net}, &s); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			d := time.Since(t0)
			if net {
				egress = append(egress, d)
			} else {
				plain = append(plain, d)
			}
			api("DELETE", "/sandboxes/"+s.ID, nil, nil)
		}
	}
	res["create_ms_p50"], res["create_ms_p95"] = pct(plain, 0.5), pct(plain, 0.95)
	res["create_egress_ms_p50"], res["create_egress_ms_p95"] = pct(egress, 0.5), pct(egress, 0.95)
	res["egress_extra_ms_p50"] = pct(egress, 0.5) - pct(plain, 0.5)

	var s sandbox
	if err := api("POST", "/sandboxes", map[string]any{"timeout": 600, "limits": map[string]any{"memoryMB": 2048, "diskSizeMB": 2048, "cpus": 2}}, &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer api("DELETE", "/sandboxes/"+s.ID, nil, nil)
	mb := strconv.Itoa(*sizeMB)
	if out, err := run(s, "head -c "+mb+"M /dev/zero > /tmp/big", true); err != nil {
		fmt.Fprintln(os.Stderr, out, err)
		os.Exit(1)
	}
	run(s, "cd /tmp && exec python3 -m http.server 8000 >/dev/null 2>&1", false)
	time.Sleep(time.Second)
	// Direct: curl inside the sandbox, on its loopback (best of 3).
	best := 0.0
	for i := 0; i < 3; i++ {
		out, err := run(s, "curl -s -o /dev/null -w '%{speed_download}' http://127.0.0.1:8000/big", true)
		v, perr := strconv.ParseFloat(strings.TrimSpace(out), 64)
		if err != nil || perr != nil {
			fmt.Fprintln(os.Stderr, "direct:", out, err)
			os.Exit(1)
		}
		best = max(best, v)
	}
	res["direct_MBps"] = best / (1 << 20)
	// Proxied: from the host through the daemon (best of 3).
	best = 0
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", *baseURL+"/big", nil)
		req.Header.Set("E2b-Sandbox-Id", s.ID)
		req.Header.Set("E2b-Sandbox-Port", "8000")
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		best = max(best, float64(n)/time.Since(t0).Seconds())
	}
	res["proxied_MBps"] = best / (1 << 20)
	res["proxied_over_direct"] = res["proxied_MBps"].(float64) / res["direct_MBps"].(float64)
	json.NewEncoder(os.Stdout).Encode(res)
}
