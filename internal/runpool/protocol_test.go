package runpool

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/limits"
	"github.com/soulbox-dev/soulbox/internal/result"
)

// distinct sets every field of the struct v points to a different
// non-zero value, so a field the encoding forgets cannot round-trip.
func distinct(t *testing.T, v any) {
	t.Helper()
	s := reflect.ValueOf(v).Elem()
	for i := range s.NumField() {
		f := s.Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000*(i+1) + 7))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.25)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.String:
			f.SetString("s" + s.Type().Field(i).Name)
		case reflect.Slice:
			if f.Type().Elem().Kind() == reflect.Uint8 {
				f.SetBytes([]byte("b\x00" + s.Type().Field(i).Name))
			}
		default:
			t.Fatalf("field %s of kind %s: teach this test and the encoding", s.Type().Field(i).Name, f.Kind())
		}
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, r := range []Request{
		{Argv: []string{"x"}, Limits: limits.Defaults()},
		{Argv: []string{"python3", "-c", "print('é\x00')", ""}, Env: []string{"A=1", "B="}, Stream: true},
	} {
		if r.Limits == (limits.Limits{}) {
			distinct(t, &r.Limits)
		}
		got, err := ParseRequest(AppendRequest(nil, r))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, r)
		}
	}
	if n := reflect.TypeFor[limits.Limits]().NumField(); n != len(limitFields(&limits.Limits{}))+1 {
		t.Fatalf("limits.Limits has %d fields; the request encodes %d", n, len(limitFields(&limits.Limits{}))+1)
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := result.Result{Status: result.StatusTLE, ExitCode: -1, Signal: unix.SIGKILL, Stdout: []byte("out\x00"), Stderr: []byte("err"),
		StdoutTruncated: true, Wall: 1500 * time.Millisecond, CPU: 3 * time.Microsecond, PeakMemory: 1 << 40}
	got, err := ParseResult(AppendResult(nil, &r))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, r) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", *got, r)
	}
	// Every field but the collected files (a pooled run has none) and
	// OOMKills (internal) is carried.
	carried := 0
	for f := range reflect.TypeFor[result.Result]().Fields() {
		switch f.Name {
		case "Files", "FilesTruncated", "FilesError", "OOMKills":
		default:
			carried++
		}
	}
	if carried != 10 {
		t.Fatalf("result.Result has %d fields a pooled run reports; the encoding carries 10", carried)
	}
}

// Anything cut short or with bytes left over is refused, never
// misread; so is a request with flags this version does not know.
func TestDecodeRefusesMalformed(t *testing.T) {
	req := AppendRequest(nil, Request{Argv: []string{"echo", "hi"}, Env: []string{"A=1"}, Limits: limits.Defaults()})
	res := AppendResult(nil, &result.Result{Status: result.StatusOK, Stdout: []byte("hello")})
	for n := range len(req) {
		if _, err := ParseRequest(req[:n]); err == nil {
			t.Fatalf("request cut to %d of %d bytes was accepted", n, len(req))
		}
	}
	for n := range len(res) {
		if _, err := ParseResult(res[:n]); err == nil {
			t.Fatalf("result cut to %d of %d bytes was accepted", n, len(res))
		}
	}
	if _, err := ParseRequest(append(req, 0)); err == nil {
		t.Fatal("a request with a byte too many was accepted")
	}
	if _, err := ParseRequest(append([]byte{4}, req[1:]...)); err == nil {
		t.Fatal("a request with unknown flags was accepted")
	}
	// A count far beyond the bytes present does not allocate for it.
	if _, err := ParseRequest([]byte{0, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("a huge argv count was accepted")
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(AppendRequest(nil, Request{Argv: []string{"true"}, Limits: limits.Defaults()}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		// What decodes survives encoding again: the same request, compared
		// by its encoding (a NaN CPUs is not DeepEqual to itself; the
		// daemon's limits validation refuses it).
		enc := AppendRequest(nil, r)
		again, err := ParseRequest(enc)
		if err != nil || !bytes.Equal(AppendRequest(nil, again), enc) {
			t.Fatalf("re-encoding %+v: %+v, %v", r, again, err)
		}
	})
}
