package judge

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	sbrt "github.com/soulbox-dev/soulbox/internal/runtime"
)

func TestInteractiveVerdict(t *testing.T) {
	ok := &sbrt.Result{Status: sbrt.StatusOK}
	exit := func(c int) *sbrt.Result { return &sbrt.Result{Status: sbrt.StatusRE, ExitCode: c} }
	st := func(s sbrt.Status) *sbrt.Result { return &sbrt.Result{Status: s} }
	tests := []struct {
		name       string
		sub, inter *sbrt.Result
		want       string
	}{
		{"accepted", ok, ok, AC},
		{"wrong answer", ok, exit(1), WA},
		{"presentation", ok, exit(2), PE},
		{"interactor fail", ok, exit(3), JE},
		{"interactor other code", ok, exit(42), JE},
		{"interactor signal", ok, st(sbrt.StatusSG), JE},
		{"interactor time", ok, st(sbrt.StatusTLE), JE},
		{"interactor memory", ok, st(sbrt.StatusMLE), JE},
		{"submission time first", st(sbrt.StatusTLE), exit(1), TLE},
		{"submission time over interactor failure", st(sbrt.StatusTLE), st(sbrt.StatusTLE), TLE},
		{"submission memory", st(sbrt.StatusMLE), ok, MLE},
		{"submission output", st(sbrt.StatusOLE), ok, OLE},
		{"submission runtime error", exit(1), ok, RE},
		{"submission runtime error, interactor WA", st(sbrt.StatusSG), exit(1), RE},
		{"interactor crash over submission RE", exit(1), st(sbrt.StatusSG), JE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InteractiveVerdict(tt.sub, tt.inter); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRelay(t *testing.T) {
	t.Run("order then EOF", func(t *testing.T) {
		r := NewRelay(0)
		r.Write([]byte("ab"))
		r.Write([]byte("cd"))
		r.CloseWrite()
		got, err := io.ReadAll(r)
		if string(got) != "abcd" || err != nil {
			t.Fatalf("got %q, %v; want abcd", got, err)
		}
		if _, err := r.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("write after CloseWrite: %v", err)
		}
	})
	t.Run("unbounded writer never waits", func(t *testing.T) {
		r := NewRelay(0)
		for range 1000 {
			r.Write(make([]byte, 1024))
		}
		r.CloseRead()
		if _, err := r.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("write after CloseRead: %v", err)
		}
	})
	t.Run("CloseRead wakes a waiting reader and writer", func(t *testing.T) {
		r, w := NewRelay(0), NewRelay(2)
		w.Write([]byte("12"))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		wg.Add(2)
		go func() { defer wg.Done(); _, errs[0] = r.Read(make([]byte, 1)) }()
		go func() { defer wg.Done(); _, errs[1] = w.Write([]byte("3")) }()
		time.Sleep(20 * time.Millisecond)
		r.CloseRead()
		w.CloseRead()
		wg.Wait()
		for i, err := range errs {
			if !errors.Is(err, io.ErrClosedPipe) {
				t.Errorf("call %d: %v, want ErrClosedPipe", i, err)
			}
		}
	})
	t.Run("bounded writer waits for room", func(t *testing.T) {
		r := NewRelay(4)
		r.Write([]byte("1234"))
		done := make(chan struct{})
		go func() { r.Write([]byte("5")); close(done) }()
		select {
		case <-done:
			t.Fatal("write did not wait with max bytes pending")
		case <-time.After(20 * time.Millisecond):
		}
		buf := make([]byte, 4)
		r.Read(buf)
		<-done
		r.CloseWrite()
		if got, _ := io.ReadAll(r); string(got) != "5" {
			t.Fatalf("got %q, want 5", got)
		}
	})
}
