package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// requireTool finds a host tool a test needs; under CI=true its absence is
// a failure, elsewhere a skip naming it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed, and CI=true: failing instead of skipping", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// TestLanguageRuntimesUnderSandbox runs threaded programs of the main
// language runtimes under the full sandbox (seccomp included).
func TestLanguageRuntimesUnderSandbox(t *testing.T) {
	requireRoot(t)
	dir := dataDir(t)
	src := dataDir(t)
	write := func(name, body string) string {
		p := filepath.Join(src, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("python threads", func(t *testing.T) {
		res := soulboxRun(t, dir, nil, "python3", "-c", `
import threading, concurrent.futures as cf
with cf.ThreadPoolExecutor(8) as ex:
    print(sum(ex.map(lambda x: x*x, range(100))))
import multiprocessing as mp
with mp.Pool(2) as p:
    print(sum(p.map(abs, range(-10, 10))))`)
		expect(t, res, "OK", "328350\n100\n")
	})

	t.Run("node worker threads", func(t *testing.T) {
		requireTool(t, "node")
		res := soulboxRun(t, dir, []string{"--memory", "1G"}, "node", "-e", `
const { Worker } = require('worker_threads');
let done = 0, total = 0;
for (let i = 0; i < 4; i++) {
  const w = new Worker('const {parentPort}=require("worker_threads"); parentPort.postMessage(21)', { eval: true });
  w.on('message', (m) => { total += m; if (++done === 4) console.log(total); });
}`)
		expect(t, res, "OK", "84\n")
	})

	t.Run("java threads", func(t *testing.T) {
		requireTool(t, "java")
		p := write("Main.java", `
public class Main {
  public static void main(String[] a) throws Exception {
    var sum = new java.util.concurrent.atomic.AtomicLong();
    Thread[] ts = new Thread[8];
    for (int i = 0; i < 8; i++) { final int n = i; ts[i] = new Thread(() -> sum.addAndGet(n)); ts[i].start(); }
    for (Thread t : ts) t.join();
    System.out.println(sum.get());
  }
}`)
		res := soulboxRun(t, dir, []string{"--memory", "2G", "--timeout", "60s", "--cpu-time", "60s", "--copy-in", "Main.java=" + p}, "java", "Main.java")
		expect(t, res, "OK", "28\n")
	})

	t.Run("go goroutines", func(t *testing.T) {
		goBin := requireTool(t, "go")
		os.MkdirAll(filepath.Join(src, "gothreads"), 0o755)
		write("gothreads/go.mod", "module gothreads\ngo 1.22\n")
		write("gothreads/main.go", `package main
import ("fmt"; "runtime"; "sync")
func main() {
	var wg sync.WaitGroup; var mu sync.Mutex; total := 0
	for i := 0; i < 16; i++ { wg.Add(1); go func(n int) { defer wg.Done(); runtime.LockOSThread(); mu.Lock(); total += n; mu.Unlock() }(i) }
	wg.Wait(); fmt.Println(total)
}`)
		out := filepath.Join(src, "gothreads-bin")
		build := exec.Command(goBin, "build", "-o", out, ".")
		build.Dir = filepath.Join(src, "gothreads")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v %s", err, b)
		}
		res := soulboxRun(t, dir, []string{"--copy-in", "prog=" + out}, "./prog")
		expect(t, res, "OK", "120\n")
	})

	t.Run("rust threads", func(t *testing.T) {
		rustc := requireTool(t, "rustc")
		p := write("main.rs", `use std::thread;
fn main() {
    let hs: Vec<_> = (0..8u64).map(|i| thread::spawn(move || i * 2)).collect();
    let s: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    println!("{}", s);
}`)
		out := filepath.Join(src, "rust-bin")
		if b, err := exec.Command(rustc, "-O", "-o", out, p).CombinedOutput(); err != nil {
			t.Fatalf("rustc: %v %s", err, b)
		}
		res := soulboxRun(t, dir, []string{"--copy-in", "prog=" + out}, "./prog")
		expect(t, res, "OK", "56\n")
	})

	t.Run("c fork and pthreads", func(t *testing.T) {
		gcc := requireTool(t, "gcc")
		p := write("t.c", `#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void *f(void *a) { return a; }
int main(void) {
  pthread_t t[4]; long s = 0;
  for (long i = 0; i < 4; i++) pthread_create(&t[i], 0, f, (void *)i);
  for (int i = 0; i < 4; i++) { void *r; pthread_join(t[i], &r); s += (long)r; }
  pid_t c = fork(); if (c == 0) _exit(3);
  int st; waitpid(c, &st, 0);
  printf("%ld %d\n", s, WEXITSTATUS(st));
  return 0;
}`)
		out := filepath.Join(src, "c-bin")
		if b, err := exec.Command(gcc, "-O2", "-pthread", "-o", out, p).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v %s", err, b)
		}
		res := soulboxRun(t, dir, []string{"--copy-in", "prog=" + out}, "./prog")
		expect(t, res, "OK", "6 3\n")
	})
	hostClean(t, dir)
}

func expect(t *testing.T, res runResult, status, stdout string) {
	t.Helper()
	if res.Status != status || res.Stdout != stdout {
		t.Fatalf("got %s %q (stderr %q), want %s %q", res.Status, res.Stdout, trim(strings.TrimSpace(res.Stderr)), status, stdout)
	}
}
