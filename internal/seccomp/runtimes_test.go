//go:build linux

package seccomp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRuntimesUnderFilter runs real language runtimes and toolchains under
// the filter: threads, child processes, sockets and files. Each subtest
// skips when its tool is not installed.
func TestRuntimesUnderFilter(t *testing.T) {
	requireNative(t)
	if testing.Short() {
		t.Skip("starts JVMs and compilers; skipped with -short")
	}
	dir := t.TempDir()
	java := filepath.Join(dir, "Main.java")
	csrc := filepath.Join(dir, "t.c")
	writeFile(t, java, `public class Main {
  public static void main(String[] a) throws Exception {
    Thread[] ts = new Thread[8];
    for (int i = 0; i < ts.length; i++) { ts[i] = new Thread(() -> {}); ts[i].start(); }
    for (Thread t : ts) t.join();
    int rc = new ProcessBuilder("true").start().waitFor();
    new java.net.ServerSocket(0).close();
    if (rc == 0) System.out.println("ok");
  }
}
`)
	writeFile(t, csrc, `#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void *f(void *p) { return p; }
int main(void) {
  pthread_t t;
  if (pthread_create(&t, 0, f, 0) || pthread_join(t, 0)) return 1;
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int st;
  if (waitpid(pid, &st, 0) != pid || st != 0) return 2;
  puts("ok");
  return 0;
}
`)
	tests := []struct {
		name string
		args []string
	}{
		{"sh", []string{"sh", "-c", `x=$(echo o); echo "${x}k" | cat`}},
		{"bash", []string{"bash", "-c", `set -e; x=$(echo o); ( sleep 0 & wait ); echo "${x}k" | cat`}},
		{"python3", []string{"python3", "-c", `
import os, socket, subprocess, tempfile, threading
ts = [threading.Thread(target=lambda: None) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
subprocess.run(["true"], check=True)
socket.socket(socket.AF_INET6).close()
with tempfile.TemporaryDirectory() as d:
    open(os.path.join(d, "f"), "w").write("x")
print("ok")
`}},
		{"node", []string{"node", "-e", `
const { Worker } = require('worker_threads');
require('child_process').execFileSync('true');
require('fs').writeFileSync('f', 'x'); // the child runs in a test temp dir
new Worker('require("worker_threads").parentPort.postMessage(1)', { eval: true })
  .on('message', () => { console.log('ok'); process.exit(0); });
`}},
		{"java", []string{"java", "-Xshare:auto", java}},
		{"gcc", []string{"sh", "-c", "gcc -pthread -o " + filepath.Join(dir, "a.out") + " " + csrc + " && " + filepath.Join(dir, "a.out")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := tt.args[0]
			if tt.name == "gcc" {
				tool = "gcc"
			}
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
			out, state := runChild(t, "exec", tt.args...)
			if !state.Success() || !strings.Contains(out, "ok") {
				t.Errorf("%s under the filter: %v, stdout %q, want success printing ok", tt.name, state, out)
			}
		})
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
