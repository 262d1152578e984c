package runpool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/soulbox-dev/soulbox/internal/result"
)

// Run asks the daemon using dataDir to run req in one of its ready
// sandboxes, feeding stdin and, when req.Stream, passing output to stdout
// and stderr as it comes. It returns ErrCold when there is no daemon or
// none of its sandboxes can take the run: the caller then sets up its own.
// An error wrapping ErrInvalid is a request the daemon refused.
func Run(ctx context.Context, dataDir string, req Request, stdin io.Reader, stdout, stderr io.Writer) (*result.Result, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: SocketPath(dataDir), Net: "unix"})
	if err != nil {
		return nil, ErrCold // no daemon (or not ours to use)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	frame = append(frame, body...)
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, _, err = c.WriteMsgUnix(frame, unix.UnixRights(int(r.Fd())), nil)
	r.Close()
	defer w.Close()
	if err != nil {
		return nil, ErrCold
	}
	for {
		kind, p, err := readFrame(c)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("run interrupted: %w", context.Cause(ctx))
			}
			return nil, fmt.Errorf("run pool: %w", err)
		}
		switch kind {
		case FrameAccept:
			// Only now: a cold answer leaves stdin unread for our own run.
			go func() {
				defer w.Close()
				if stdin != nil {
					io.Copy(w, stdin) // EPIPE once the program is done is expected
				}
			}()
		case FrameStdout:
			stdout.Write(p)
		case FrameStderr:
			stderr.Write(p)
		case FrameCold:
			return nil, ErrCold
		case FrameError:
			return nil, fmt.Errorf("%w: %s", ErrInvalid, p)
		case FrameFailed:
			return nil, fmt.Errorf("sandbox failed: %s", p)
		case FrameResult:
			var res result.Result
			if err := json.Unmarshal(p, &res); err != nil {
				return nil, fmt.Errorf("run pool: decode result: %w", err)
			}
			return &res, nil
		default:
			return nil, errors.New("run pool: unexpected frame")
		}
	}
}
