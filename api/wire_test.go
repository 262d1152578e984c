// Package api_test checks that the generated code speaks the wire protocol
// E2B's SDKs expect: procedure paths and field numbers are protocol facts.
package api_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/process/processconnect"
	"github.com/soulbox-dev/soulbox/sdk/go/soulboxpb/v1/soulboxv1connect"
)

func TestProcedurePaths(t *testing.T) {
	for got, want := range map[string]string{
		processconnect.ProcessStartProcedure:          "/process.Process/Start",
		processconnect.ProcessConnectProcedure:        "/process.Process/Connect",
		processconnect.ProcessListProcedure:           "/process.Process/List",
		processconnect.ProcessSendInputProcedure:      "/process.Process/SendInput",
		processconnect.ProcessStreamInputProcedure:    "/process.Process/StreamInput",
		processconnect.ProcessSendSignalProcedure:     "/process.Process/SendSignal",
		processconnect.ProcessCloseStdinProcedure:     "/process.Process/CloseStdin",
		processconnect.ProcessUpdateProcedure:         "/process.Process/Update",
		filesystemconnect.FilesystemStatProcedure:     "/filesystem.Filesystem/Stat",
		filesystemconnect.FilesystemListDirProcedure:  "/filesystem.Filesystem/ListDir",
		filesystemconnect.FilesystemWatchDirProcedure: "/filesystem.Filesystem/WatchDir",
		filesystemconnect.FilesystemMakeDirProcedure:  "/filesystem.Filesystem/MakeDir",
		filesystemconnect.FilesystemMoveProcedure:     "/filesystem.Filesystem/Move",
		filesystemconnect.FilesystemRemoveProcedure:   "/filesystem.Filesystem/Remove",
		// SoulBox's own control-plane service (docs/API.md).
		soulboxv1connect.CodeServiceExecuteProcedure:    "/soulbox.v1.CodeService/Execute",
		soulboxv1connect.CodeServiceJudgeProcedure:      "/soulbox.v1.CodeService/Judge",
		soulboxv1connect.CodeServiceJudgeBatchProcedure: "/soulbox.v1.CodeService/JudgeBatch",
	} {
		if got != want {
			t.Errorf("procedure %q, want %q", got, want)
		}
	}
}

func TestFieldNumbers(t *testing.T) {
	cases := []struct {
		msg    protoreflect.ProtoMessage
		fields map[string]protoreflect.FieldNumber
	}{
		{&process.StartRequest{}, map[string]protoreflect.FieldNumber{"process": 1, "pty": 2, "tag": 3, "stdin": 4}},
		{&process.ProcessConfig{}, map[string]protoreflect.FieldNumber{"cmd": 1, "args": 2, "envs": 3, "cwd": 4}},
		{&process.ProcessEvent{}, map[string]protoreflect.FieldNumber{"start": 1, "data": 2, "end": 3, "keepalive": 4}},
		{&process.ProcessEvent_EndEvent{}, map[string]protoreflect.FieldNumber{"exit_code": 1, "exited": 2, "status": 3, "error": 4}},
		{&process.ProcessSelector{}, map[string]protoreflect.FieldNumber{"pid": 1, "tag": 2}},
		{&filesystem.EntryInfo{}, map[string]protoreflect.FieldNumber{"name": 1, "type": 2, "path": 3, "size": 4, "mode": 5,
			"permissions": 6, "owner": 7, "group": 8, "modified_time": 9, "symlink_target": 10}},
		{&filesystem.WatchDirRequest{}, map[string]protoreflect.FieldNumber{"path": 1, "recursive": 2, "include_entry": 3}},
	}
	for _, c := range cases {
		d := c.msg.ProtoReflect().Descriptor()
		if d.Fields().Len() != len(c.fields) {
			t.Errorf("%s has %d fields, want %d", d.FullName(), d.Fields().Len(), len(c.fields))
		}
		for name, num := range c.fields {
			f := d.Fields().ByName(protoreflect.Name(name))
			if f == nil || f.Number() != num {
				t.Errorf("%s.%s: got %v, want number %d", d.FullName(), name, f, num)
			}
		}
	}
	if process.Signal_SIGNAL_SIGKILL != 9 || process.Signal_SIGNAL_SIGTERM != 15 {
		t.Error("signal enum values differ from envd's")
	}
}
