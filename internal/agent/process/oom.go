package process

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
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

// raiseOOMScoreAdj sets the oom_score_adj of pid, a child just started
// with cred, to childOOMScoreAdj. The agent's own value never changes (a
// child inheriting a raised value from the agent would leave the agent the
// first victim while the child execs, which under memory pressure takes
// long). The write is made with the child's file system ids: its /proc
// files belong to it, and the agent holds no CAP_DAC_OVERRIDE. Raising
// needs no privilege. What the child forks before the write keeps the
// agent's value. A child that already ended is not an error.
func raiseOOMScoreAdj(pid int, cred *syscall.Credential) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		uid0, _ := unix.SetfsuidRetUid(-1)
		gid0, _ := unix.SetfsgidRetGid(-1)
		if cred != nil {
			unix.SetfsgidRetGid(int(cred.Gid))
			unix.SetfsuidRetUid(int(cred.Uid))
		}
		err := writeProcFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", strconv.Itoa(childOOMScoreAdj))
		unix.SetfsuidRetUid(uid0)
		unix.SetfsgidRetGid(gid0)
		if u, _ := unix.SetfsuidRetUid(-1); u != uid0 {
			done <- errors.New("cannot restore the agent's file system uid")
			return // still locked: the thread dies with this goroutine
		}
		if g, _ := unix.SetfsgidRetGid(-1); g != gid0 {
			done <- errors.New("cannot restore the agent's file system gid")
			return
		}
		runtime.UnlockOSThread()
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			err = nil // it ended already
		}
		done <- err
	}()
	if err := <-done; err != nil {
		return fmt.Errorf("set the oom_score_adj of process %d: %w", pid, err)
	}
	return nil
}

func writeProcFile(path, v string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(v)
	return errors.Join(err, f.Close())
}
