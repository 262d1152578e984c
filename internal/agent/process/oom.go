package process

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/fsid"
)

// childOOMScoreAdj is the oom_score_adj of every process the agent starts:
// the sandbox's memory cgroup's OOM killer takes them before the agent.
// Without it the agent, which is often the largest process of a sandbox
// running many small ones and holds their output history, is the one
// killed when the tenant fills the memory limit, and the sandbox ends
// with it. A process may lower its own value back to the agent's, not
// below (lowering below what a privileged writer set needs
// CAP_SYS_RESOURCE): a tenant can at most make its own processes compete
// with the agent again, inside its own sandbox.
const childOOMScoreAdj = 1000

// raiseOOMScoreAdj sets the oom_score_adj of pid, a child just started,
// to childOOMScoreAdj. The agent's own value never changes (a child
// inheriting a raised value from the agent would leave the agent the first
// victim while the child execs, which under memory pressure takes long).
// The file belongs to the process's owner (or, if the process is not
// dumpable, to the sandbox's root) and the agent holds no
// CAP_DAC_OVERRIDE, so the write is made with the file's owner as file
// system ids; raising needs no privilege. An exec in the child can change
// the owner between the look and the write: then it looks again. What the
// child forks before the write keeps the agent's value. A child that
// already ended is not an error.
func raiseOOMScoreAdj(pid int) error {
	path := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	var err error
	for range 3 {
		var st unix.Stat_t
		if err = unix.Stat(path, &st); err != nil {
			break
		}
		if err = fsid.As(st.Uid, st.Gid, func() error {
			return writeProcFile(path, strconv.Itoa(childOOMScoreAdj))
		}); !errors.Is(err, os.ErrPermission) {
			break
		}
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) ||
		(errors.Is(err, os.ErrPermission) && exiting(pid)) {
		// It ended already. (A process that has let go of its memory, on
		// its way to being a zombie or one, has /proc files owned by the
		// host's root, which nobody in the sandbox can write.)
		return nil
	}
	if err != nil {
		return fmt.Errorf("set the oom_score_adj of process %d: %w", pid, err)
	}
	return nil
}

// exiting reports whether pid has ended or is ending: gone, a zombie, or
// without memory (its status has no VmSize line).
func exiting(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return true
	}
	st := string(b)
	if i := strings.Index(st, "\nState:\t"); i >= 0 && len(st) > i+8 && (st[i+8] == 'Z' || st[i+8] == 'X') {
		return true
	}
	return !strings.Contains(st, "\nVmSize:")
}

func writeProcFile(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	return errors.Join(err, f.Close())
}
