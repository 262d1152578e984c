package execute

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runKernel runs a kernel program directly (no sandbox) on the given
// execute messages and returns its protocol lines.
func runKernel(t *testing.T, tool string, argv []string, msgs ...map[string]any) []string {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed, and CI=true", tool)
		}
		t.Skipf("%s is not installed", tool)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "KEEP=kept")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// stdin stays open until every execution has ended: at EOF a kernel exits.
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	for _, m := range msgs {
		b, _ := json.Marshal(m)
		if _, err := stdin.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for ends := 0; ends < len(msgs) && sc.Scan(); {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if m["type"] == "end" {
			ends++
		}
		delete(m, "id")
		delete(m, "execution_count")
		b, _ := json.Marshal(m)
		lines = append(lines, string(b))
	}
	return lines
}

func TestKernelEnvAndLines(t *testing.T) {
	t.Run("python", func(t *testing.T) {
		got := runKernel(t, "python3", kernels["python"].argv,
			map[string]any{"type": "execute", "id": "1", "env": map[string]string{"FOO": "bar", "KEEP": "over"},
				"code": "import os, sys\nprint('first', flush=True)\nprint('a', end='')\nprint('e', file=sys.stderr)\nprint('b')\n(os.environ['FOO'], os.environ['KEEP'])"},
			map[string]any{"type": "execute", "id": "2", "code": "(os.environ.get('FOO'), os.environ['KEEP'])"},
		)
		want := []string{
			`{"text":"first\n","type":"stdout"}`,
			`{"text":"a","type":"stdout"}`,
			`{"text":"e\n","type":"stderr"}`,
			`{"text":"b\n","type":"stdout"}`,
			`{"data":{"text/plain":"('bar', 'over')"},"main":true,"type":"result"}`,
			`{"type":"end"}`,
			`{"data":{"text/plain":"(None, 'kept')"},"main":true,"type":"result"}`,
			`{"type":"end"}`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("javascript", func(t *testing.T) {
		got := runKernel(t, "node", kernels["javascript"].argv,
			map[string]any{"type": "execute", "id": "1", "env": map[string]string{"FOO": "bar", "KEEP": "over"}, "code": "[process.env.FOO, process.env.KEEP].join()"},
			map[string]any{"type": "execute", "id": "2", "code": "[String(process.env.FOO), process.env.KEEP].join()"},
		)
		want := []string{
			`{"data":{"text/plain":"'bar,over'"},"main":true,"type":"result"}`,
			`{"type":"end"}`,
			`{"data":{"text/plain":"'undefined,kept'"},"main":true,"type":"result"}`,
			`{"type":"end"}`,
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
