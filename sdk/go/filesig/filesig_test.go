package filesig

import (
	"errors"
	"testing"
	"time"
)

func TestSignKnownAnswer(t *testing.T) {
	// sha256("/home/user/a.txt:read::tok") computed independently with
	// `printf %s '/home/user/a.txt:read::tok' | sha256sum | xxd -r -p | base64`.
	got := Sign("/home/user/a.txt", Read, "", "tok", time.Time{})
	if got != "v1_"+knownAnswer {
		t.Fatalf("Sign = %s", got)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	exp := now.Add(time.Minute)
	sig := Sign("/f", Write, "user", "tok", exp)
	expStr := "1800000060"
	if err := Verify(sig, expStr, "/f", Write, "user", "tok", now); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	cases := []struct {
		name                  string
		sig, exp, path, op, u string
		tok                   string
		at                    time.Time
		want                  error
	}{
		{"expired", sig, expStr, "/f", Write, "user", "tok", exp, ErrExpired},
		{"other path", sig, expStr, "/g", Write, "user", "tok", now, ErrInvalid},
		{"other operation", sig, expStr, "/f", Read, "user", "tok", now, ErrInvalid},
		{"other user", sig, expStr, "/f", Write, "root", "tok", now, ErrInvalid},
		{"other token", sig, expStr, "/f", Write, "user", "tok2", now, ErrInvalid},
		{"expiry moved", sig, "1900000000", "/f", Write, "user", "tok", now, ErrInvalid},
		{"expiry dropped", sig, "", "/f", Write, "user", "tok", now, ErrInvalid},
		{"bad expiry", sig, "soon", "/f", Write, "user", "tok", now, ErrInvalid},
		{"empty", "", expStr, "/f", Write, "user", "tok", now, ErrInvalid},
	}
	for _, c := range cases {
		if err := Verify(c.sig, c.exp, c.path, c.op, c.u, c.tok, c.at); !errors.Is(err, c.want) {
			t.Errorf("%s: Verify = %v, want %v", c.name, err, c.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("v1_abc", "1800000060", "/f", "read", "user", "tok")
	f.Fuzz(func(t *testing.T, sig, exp, path, op, user, tok string) {
		now := time.Unix(1_800_000_000, 0)
		if Verify(sig, exp, path, op, user, tok, now) == nil {
			// Only the genuine signature may pass.
			var e time.Time
			if exp != "" {
				e = time.Unix(mustInt(t, exp), 0)
			}
			if sig != Sign(path, op, user, tok, e) {
				t.Fatalf("forged signature accepted: %q", sig)
			}
		}
	})
}

const knownAnswer = "Zkbb3914oLJLvMBzCAHQhm2ydBLxbSx2eQUR/kLdvIY"

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("accepted non-numeric expiry %q", s)
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
