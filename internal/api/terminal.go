package api

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"

	"github.com/soulbox-dev/soulbox/internal/sandbox"
	pb "github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
)

// terminalControl is a text frame of the terminal WebSocket: from the
// client {"type":"resize","cols":C,"rows":R}; from the daemon, last,
// {"type":"exit","exitCode":N}.
type terminalControl struct {
	Type     string `json:"type"`
	Cols     uint32 `json:"cols,omitempty"`
	Rows     uint32 `json:"rows,omitempty"`
	ExitCode *int32 `json:"exitCode,omitempty"`
	Error    string `json:"error,omitempty"`
}

// terminal serves GET /sandboxes/{id}/terminal: a PTY in the sandbox over
// a WebSocket, for browsers and other clients without a Connect library.
// Binary frames carry terminal bytes both ways; text frames carry
// terminalControl messages. Authentication is the API key of the
// sandbox's team (header) or, since browsers cannot set WebSocket
// headers, the sandbox's access token as the access_token parameter.
// Query: cols, rows (default 80x24), cmd (default /bin/bash -i -l), user.
func (s *Server) terminal(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t, err := s.terminalAuth(r, id)
	if err != nil {
		s.writeErr(w, err)
		return
	}
	if t.State != sandbox.Running {
		writeError(w, http.StatusConflict, fmt.Sprintf("sandbox %s is %s: resume it first", id, t.State))
		return
	}
	if err := checkUpgrade(r); err != nil {
		s.writeErr(w, err)
		return
	}
	q := r.URL.Query()
	cols, err1 := dim(q.Get("cols"), 80)
	rows, err2 := dim(q.Get("rows"), 24)
	if err := errors.Join(err1, err2); err != nil {
		s.writeErr(w, err)
		return
	}
	cmd, args := "/bin/bash", []string{"-i", "-l"}
	if c := q.Get("cmd"); c != "" {
		cmd, args = c, q["arg"]
	}
	user := q.Get("user")
	if user == "" {
		user = "user"
	}
	// Authentication is by key or token, never by cookie, so a page of
	// another origin gains nothing it does not already hold.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return // Accept has answered
	}
	defer conn.CloseNow()
	conn.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	procs := processconnect.NewProcessClient(t.Box.HTTPClient(false), "http://agent")
	withUser := func(req interface{ Header() http.Header }) {
		req.Header().Set("Authorization", basicUser(user))
	}
	start := connect.NewRequest(&pb.StartRequest{
		Process: &pb.ProcessConfig{Cmd: cmd, Args: args, Envs: map[string]string{"TERM": "xterm-256color"}},
		Pty:     &pb.PTY{Size: &pb.PTY_Size{Cols: cols, Rows: rows}},
	})
	withUser(start)
	stream, err := procs.Start(ctx, start)
	if err != nil {
		conn.Close(websocket.StatusInternalError, err.Error())
		return
	}
	defer stream.Close()
	if !stream.Receive() || stream.Msg().GetEvent().GetStart() == nil {
		conn.Close(websocket.StatusInternalError, fmt.Sprintf("terminal did not start: %v", stream.Err()))
		return
	}
	pid := stream.Msg().GetEvent().GetStart().GetPid()
	sel := &pb.ProcessSelector{Selector: &pb.ProcessSelector_Pid{Pid: pid}}

	// Client → terminal.
	go func() {
		defer cancel()
		for {
			typ, data, err := conn.Read(ctx)
			if err != nil {
				// The client left: end the terminal, as a hang-up would.
				kill := connect.NewRequest(&pb.SendSignalRequest{Process: sel, Signal: pb.Signal_SIGNAL_SIGKILL})
				withUser(kill)
				procs.SendSignal(context.WithoutCancel(ctx), kill)
				return
			}
			if typ == websocket.MessageBinary {
				in := connect.NewRequest(&pb.SendInputRequest{Process: sel, Input: &pb.ProcessInput{Input: &pb.ProcessInput_Pty{Pty: data}}})
				withUser(in)
				procs.SendInput(ctx, in)
				continue
			}
			var c terminalControl
			if json.Unmarshal(data, &c) == nil && c.Type == "resize" && c.Cols > 0 && c.Rows > 0 && c.Cols <= 10000 && c.Rows <= 10000 {
				up := connect.NewRequest(&pb.UpdateRequest{Process: sel, Pty: &pb.PTY{Size: &pb.PTY_Size{Cols: c.Cols, Rows: c.Rows}}})
				withUser(up)
				procs.Update(ctx, up)
			}
		}
	}()
	// Terminal → client.
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if b := ev.GetData().GetPty(); len(b) > 0 {
			if err := conn.Write(ctx, websocket.MessageBinary, b); err != nil {
				return
			}
		}
		if end := ev.GetEnd(); end != nil {
			code := end.GetExitCode()
			msg, _ := json.Marshal(terminalControl{Type: "exit", ExitCode: &code, Error: end.GetError()})
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			conn.Write(wctx, websocket.MessageText, msg)
			wcancel()
			conn.Close(websocket.StatusNormalClosure, "")
			return
		}
	}
	conn.Close(websocket.StatusInternalError, "terminal stream ended")
}

func (s *Server) terminalAuth(r *http.Request, id string) (sandbox.Target, error) {
	t, ok := s.cfg.Manager.Target(id)
	if !ok {
		return sandbox.Target{}, fmt.Errorf("%w: %s", sandbox.ErrNotFound, id)
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(t.AccessToken)) == 1 {
			return t, nil
		}
		return sandbox.Target{}, fmt.Errorf("%w: wrong access token", errUnauthorized)
	}
	key := r.Header.Get("X-API-Key")
	if key == "" {
		return sandbox.Target{}, fmt.Errorf("%w: send the API key (X-API-Key) or the sandbox's access_token", errUnauthorized)
	}
	k, err := s.cfg.Store.AuthenticateAPIKey(r.Context(), key)
	if err != nil {
		return sandbox.Target{}, err
	}
	if _, err := s.cfg.Manager.Get(k.Team, id); err != nil {
		return sandbox.Target{}, err
	}
	return t, nil
}

func dim(v string, def uint32) (uint32, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 || n > 10000 {
		return 0, fmt.Errorf("%w: terminal size %q must be 1-10000", errBadRequest, v)
	}
	return uint32(n), nil
}

// basicUser is the Authorization header naming the sandbox user a call
// acts as, as the E2B SDKs send it.
func basicUser(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
}
