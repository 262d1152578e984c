package runtime

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

var marksMu sync.Mutex
var marks []string
var markT0 time.Time

func Mark(name string) {
	marksMu.Lock()
	defer marksMu.Unlock()
	if name == "start" {
		marks = marks[:0]
		markT0 = time.Now()
	}
	marks = append(marks, fmt.Sprintf("%s=%d", name, time.Since(markT0).Microseconds()))
	if name == "end" {
		fmt.Fprintln(os.Stderr, "MARKS", strings.Join(marks, " "))
	}
}
