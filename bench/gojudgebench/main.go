// Command gojudgebench measures a running go-judge (criyle/go-judge, built
// and started by hand, see bench/judge.sh) the way bench/judge.sh measures
// `soulbox judge`: one source judged against every case of a directory
// (N.in, N.out), with P requests in flight, each request one case run.
//
// A compiled language is compiled once in go-judge, with the command of
// SoulBox's language registry and its compile limits; the binary stays in
// go-judge's file store (copyOutCached) and every case run copies it in by
// file id. An interpreted language copies its source in with every run.
// Each run gets the limits `soulbox judge` applies (the same flags, on top
// of SoulBox's defaults): memory, CPU quota (cpuRateLimit, effective only
// when go-judge runs with -enable-cpu-rate), CPU time, wall time,
// processes, stack, and stdout/stderr collected up to the output limit. A
// status other than Accepted or a wrong answer fails the measurement.
//
// It refuses a go-judge that reports no cgroup (GET /config): those runs
// would have rlimits only.
//
// Output, one line each: "compile_ms <wall ms of the compile request>"
// (compiled languages only), then "runs_per_s <P> <rate>" per concurrency.
//
//	gojudgebench -url http://127.0.0.1:5050 -lang cpp -tests DIR [-parallel 1,2,4] [--memory 256M ...] SOURCE
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/soulbox-dev/soulbox/internal/lang"
	"github.com/soulbox-dev/soulbox/internal/limits"
)

// go-judge's REST protocol (POST /run, GET /config, DELETE /file/:id).
// Durations are nanoseconds, sizes bytes, cpuRateLimit thousandths of a CPU.
type gjFile struct {
	Content *string `json:"content,omitempty"` // inline content (stdin or a copied-in file)
	FileID  string  `json:"fileId,omitempty"`  // a file of go-judge's file store
	Name    string  `json:"name,omitempty"`    // a collector: stdout or stderr
	Max     int64   `json:"max,omitempty"`     // the collector's size limit
}

type gjCmd struct {
	Args          []string          `json:"args"`
	Env           []string          `json:"env"`
	Files         []gjFile          `json:"files"` // fds 0, 1, 2
	CPULimit      int64             `json:"cpuLimit"`
	ClockLimit    int64             `json:"clockLimit"`
	MemoryLimit   int64             `json:"memoryLimit"`
	StackLimit    int64             `json:"stackLimit"`
	ProcLimit     int64             `json:"procLimit"`
	CPURateLimit  int64             `json:"cpuRateLimit"`
	CopyIn        map[string]gjFile `json:"copyIn,omitempty"`
	CopyOutCached []string          `json:"copyOutCached,omitempty"`
}

type gjRequest struct {
	Cmd []gjCmd `json:"cmd"`
}

type gjResult struct {
	Status     string            `json:"status"`
	ExitStatus int               `json:"exitStatus"`
	Error      string            `json:"error"`
	Time       int64             `json:"time"`
	RunTime    int64             `json:"runTime"`
	Memory     int64             `json:"memory"`
	Files      map[string]string `json:"files"`
	FileIDs    map[string]string `json:"fileIds"`
}

type gjConfig struct {
	RunnerConfig struct {
		CgroupType        int      `json:"cgroupType"`
		CgroupControllers []string `json:"cgroupControllers"`
	} `json:"runnerConfig"`
}

const accepted = "Accepted"

var (
	baseURL  = flag.String("url", os.Getenv("GOJUDGE_URL"), "go-judge address (default $GOJUDGE_URL)")
	langName = flag.String("lang", "", "language of SoulBox's registry (cpp, python, ...)")
	tests    = flag.String("tests", "", "directory of cases N.in / N.out")
	parallel = flag.String("parallel", "1,2,4", "concurrencies to measure, comma-separated")
	lim      = limits.Defaults()
	client   = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
)

func main() {
	for _, name := range []string{"memory", "cpus", "cpu-time", "timeout", "pids", "output-limit", "stack"} {
		flag.Func(name, "limit of each case run, as `soulbox judge` spells it", func(v string) error { return lim.Set(name, v) })
	}
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gojudgebench:", err)
		os.Exit(1)
	}
}

type testCase struct {
	name     string
	in, want string
}

func run() error {
	l, ok := lang.Lookup(*langName)
	if flag.NArg() != 1 || !ok || *tests == "" || *baseURL == "" {
		return errors.New("usage: gojudgebench -url URL -lang LANG -tests DIR [-parallel 1,2,4] [limits] SOURCE")
	}
	*baseURL = strings.TrimRight(*baseURL, "/")
	var ps []int
	for _, f := range strings.Split(*parallel, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p < 1 {
			return fmt.Errorf("bad -parallel %q", *parallel)
		}
		ps = append(ps, p)
	}
	src, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		return err
	}
	cases, err := readCases(*tests)
	if err != nil {
		return err
	}
	if err := checkCgroup(); err != nil {
		return err
	}

	env := append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, l.RunEnv()...)
	copyIn := map[string]gjFile{l.Source: {Content: ptr(string(src))}}
	if l.Compiled() {
		cl := lang.DefaultCompileLimits()
		c := cmd(l.Compile, append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, l.CompileEnv()...), "", cl)
		c.CopyIn = copyIn
		c.CopyOutCached = []string{"main"}
		t0 := time.Now()
		r, err := post(c)
		if err != nil {
			return fmt.Errorf("compile: %w", err)
		}
		ms := float64(time.Since(t0).Microseconds()) / 1000
		if r.Status != accepted || r.FileIDs["main"] == "" {
			return fmt.Errorf("compile: %s (exit %d) %s%s", r.Status, r.ExitStatus, r.Error, r.Files["stderr"])
		}
		id := r.FileIDs["main"]
		defer deleteFile(id)
		fmt.Printf("compile_ms %.1f\n", ms)
		copyIn = map[string]gjFile{"main": {FileID: id}}
	}

	for _, p := range ps {
		rate, err := measure(cases, p, func(c testCase) gjCmd {
			r := cmd(l.JudgeArgv(), env, c.in, lim)
			r.CopyIn = copyIn
			return r
		})
		if err != nil {
			return err
		}
		fmt.Printf("runs_per_s %d %.0f\n", p, rate)
	}
	return nil
}

// measure runs every case with p requests in flight and returns runs per
// second of wall time. The first failure stops it.
func measure(cases []testCase, p int, mk func(testCase) gjCmd) (float64, error) {
	var next atomic.Int64
	var once sync.Once
	var failure error
	var wg sync.WaitGroup
	t0 := time.Now()
	for range p {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(cases) {
					return
				}
				c := cases[i]
				err := judge(c, mk(c))
				if err != nil {
					once.Do(func() { failure = err })
					next.Store(int64(len(cases)))
					return
				}
			}
		}()
	}
	wg.Wait()
	if failure != nil {
		return 0, failure
	}
	return float64(len(cases)) / time.Since(t0).Seconds(), nil
}

func judge(c testCase, req gjCmd) error {
	r, err := post(req)
	if err != nil {
		return fmt.Errorf("case %s: %w", c.name, err)
	}
	if r.Status != accepted {
		return fmt.Errorf("case %s: %s (exit %d) %s%s", c.name, r.Status, r.ExitStatus, r.Error, r.Files["stderr"])
	}
	if got := strings.TrimSpace(r.Files["stdout"]); got != strings.TrimSpace(c.want) {
		return fmt.Errorf("case %s: wrong answer %q, want %q", c.name, got, strings.TrimSpace(c.want))
	}
	return nil
}

// cmd is one go-judge command with SoulBox's limits l: stdin from the
// case, stdout and stderr collected up to the output limit.
func cmd(args, env []string, stdin string, l limits.Limits) gjCmd {
	return gjCmd{
		Args: args,
		Env:  env,
		Files: []gjFile{
			{Content: ptr(stdin)},
			{Name: "stdout", Max: l.OutputBytes},
			{Name: "stderr", Max: l.OutputBytes},
		},
		CPULimit:     l.CPUTime.Nanoseconds(),
		ClockLimit:   l.WallTime.Nanoseconds(),
		MemoryLimit:  l.MemoryBytes,
		StackLimit:   l.StackBytes,
		ProcLimit:    l.Pids,
		CPURateLimit: int64(l.CPUs * 1000),
	}
}

func post(c gjCmd) (*gjResult, error) {
	body, err := json.Marshal(gjRequest{Cmd: []gjCmd{c}})
	if err != nil {
		return nil, err
	}
	resp, err := client.Post(*baseURL+"/run", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /run: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var rs []gjResult
	if err := json.Unmarshal(b, &rs); err != nil {
		return nil, fmt.Errorf("POST /run: %w", err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("POST /run: %d results for one command", len(rs))
	}
	return &rs[0], nil
}

func deleteFile(id string) {
	req, err := http.NewRequest(http.MethodDelete, *baseURL+"/file/"+id, nil)
	if err != nil {
		return
	}
	if resp, err := client.Do(req); err == nil {
		resp.Body.Close()
	}
}

// checkCgroup refuses a go-judge without the cgroup controllers that carry
// the limits (cgroupType 0 means it fell back to rlimits).
func checkCgroup() error {
	resp, err := client.Get(*baseURL + "/config")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var c gjConfig
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return fmt.Errorf("GET /config: %w", err)
	}
	rc := c.RunnerConfig
	for _, need := range []string{"memory", "pids", "cpuacct", "cpu"} {
		if rc.CgroupType == 0 || !slices.Contains(rc.CgroupControllers, need) {
			// cgroup v2 has no cpuacct: its cpu controller accounts.
			if need == "cpuacct" && rc.CgroupType == 2 {
				continue
			}
			return fmt.Errorf("go-judge applies no %s cgroup limit (cgroupType %d, controllers %v): run it as root on a host with cgroups", need, rc.CgroupType, rc.CgroupControllers)
		}
	}
	return nil
}

func readCases(dir string) ([]testCase, error) {
	ins, err := filepath.Glob(filepath.Join(dir, "*.in"))
	if err != nil {
		return nil, err
	}
	if len(ins) == 0 {
		return nil, fmt.Errorf("no .in files in %s", dir)
	}
	var cs []testCase
	for _, in := range ins {
		base := strings.TrimSuffix(in, ".in")
		i, err := os.ReadFile(in)
		if err != nil {
			return nil, err
		}
		o, err := os.ReadFile(base + ".out")
		if err != nil {
			return nil, err
		}
		cs = append(cs, testCase{name: filepath.Base(base), in: string(i), want: string(o)})
	}
	return cs, nil
}

func ptr[T any](v T) *T { return &v }
