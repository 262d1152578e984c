package api

import "testing"

func TestIncompleteTail(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"abc", 0},
		{"é", 0},
		{"a\xc3", 1},        // first byte of é
		{"a\xe2\x82", 2},    // two of €'s three bytes
		{"\xf0\x9f\x98", 3}, // three of 😀's four
		{"\xf0\x9f\x98\x80", 0},
		{"a\x80", 0}, // a stray continuation byte: invalid, not incomplete
		{"\xff", 0},
	}
	for _, tt := range tests {
		if got := incompleteTail([]byte(tt.in)); got != tt.want {
			t.Errorf("incompleteTail(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
