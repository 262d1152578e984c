// Package doctor checks whether a host can run SoulBox sandboxes and
// explains how to fix what is missing. It backs `soulbox doctor`.
//
// Each check is data: a name, whether it is required, a fix hint and a
// function that probes the host without changing it (the user namespace
// probe starts and reaps one /bin/true). [Run] runs the default checks and
// prints one aligned line per check and a summary.
package doctor

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Status is the outcome of one check.
type Status int

// The statuses, from best to worst.
const (
	// OK: the check passed (or is informational).
	OK Status = iota
	// Warn: an optional check failed; sandboxes run with a degraded
	// feature or a slower path.
	Warn
	// Missing: a required check failed; sandboxes cannot run.
	Missing
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	case Missing:
		return "MISSING"
	default:
		return fmt.Sprintf("Status(%d)", int(s))
	}
}

// Check is one host check.
type Check struct {
	Name string
	// Required checks make the host unfit when they fail; others warn.
	Required bool
	// Fix tells an operator how to fix a failure.
	Fix string
	// Probe inspects the host. It reports whether the check passed and a
	// one-line detail (the value found, or why it failed).
	Probe func() (ok bool, detail string)
}

// Result is a check with its outcome.
type Result struct {
	Check  Check
	Status Status
	Detail string
}

// RunChecks runs every check, in order.
func RunChecks(checks []Check) []Result {
	res := make([]Result, 0, len(checks))
	for _, c := range checks {
		ok, detail := c.Probe()
		st := OK
		switch {
		case ok:
		case c.Required:
			st = Missing
		default:
			st = Warn
		}
		res = append(res, Result{Check: c, Status: st, Detail: detail})
	}
	return res
}

// Ready reports whether no required check failed.
func Ready(results []Result) bool {
	for _, r := range results {
		if r.Status == Missing {
			return false
		}
	}
	return true
}

// Report writes one aligned line per result, a fix line under each
// failure, and a summary line.
func Report(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var counts [3]int
	for _, r := range results {
		if int(r.Status) < len(counts) {
			counts[r.Status]++
		}
		if _, err := fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Status, r.Check.Name, oneLine(r.Detail)); err != nil {
			return err
		}
		if r.Status != OK && r.Check.Fix != "" {
			if _, err := fmt.Fprintf(tw, "\t\tfix: %s\n", oneLine(r.Check.Fix)); err != nil {
				return err
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict := "ready to run sandboxes"
	if !Ready(results) {
		verdict = "NOT ready: fix the MISSING checks above"
	}
	_, err := fmt.Fprintf(w, "\n%d checks: %d ok, %d warning(s), %d missing; %s\n",
		len(results), counts[OK], counts[Warn], counts[Missing], verdict)
	return err
}

// Run runs the default checks, writes the report to w and reports
// whether the host can run sandboxes. Errors writing to w are not
// reported; use RunChecks and Report to handle them.
func Run(w io.Writer) (ok bool) {
	res := RunChecks(Checks())
	// A failed write to w cannot be reported through w, and readiness
	// does not depend on it.
	_ = Report(w, res)
	return Ready(res)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
