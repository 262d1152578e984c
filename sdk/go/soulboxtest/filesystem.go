package soulboxtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fspb "github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem"
	"github.com/soulbox-dev/soulbox/sdk/go/envd/filesystem/filesystemconnect"
)

type filesystemService struct {
	filesystemconnect.UnimplementedFilesystemHandler
	f *FakeServer
}

var _ filesystemconnect.FilesystemHandler = (*filesystemService)(nil)

func (s *filesystemService) record(req connect.AnyRequest) {
	msg, _ := req.Any().(proto.Message)
	s.f.record(Request{Method: "POST", Path: req.Spec().Procedure, Header: req.Header().Clone(), Msg: msg})
}

// target resolves a request's path for its user.
func target(ctx context.Context, req connect.AnyRequest, p string) (*sandbox, string, error) {
	sb := sandboxFrom(ctx)
	user, err := userFrom(req.Header())
	if err != nil {
		return nil, "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	name, err := sb.resolve(user, p)
	if err != nil {
		return nil, "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return sb, name, nil
}

func fsError(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return connect.NewError(connect.CodeNotFound, errors.New("no such file or directory"))
	case errors.Is(err, fs.ErrExist):
		return connect.NewError(connect.CodeAlreadyExists, errors.New("file exists"))
	case errors.Is(err, fs.ErrPermission):
		return connect.NewError(connect.CodePermissionDenied, errors.New("permission denied"))
	}
	return connect.NewError(connect.CodeInvalidArgument, err)
}

func entry(name string, fi fs.FileInfo) *fspb.EntryInfo {
	typ := fspb.FileType_FILE_TYPE_FILE
	switch {
	case fi.IsDir():
		typ = fspb.FileType_FILE_TYPE_DIRECTORY
	case fi.Mode()&fs.ModeSymlink != 0:
		typ = fspb.FileType_FILE_TYPE_SYMLINK
	}
	abs := path.Clean("/" + name)
	return &fspb.EntryInfo{
		Name: path.Base(abs), Type: typ, Path: abs, Size: fi.Size(), Mode: uint32(fi.Mode().Perm()),
		Permissions: fi.Mode().String(), Owner: "user", Group: "user", ModifiedTime: timestamppb.New(fi.ModTime()),
	}
}

func (s *filesystemService) Stat(ctx context.Context, req *connect.Request[fspb.StatRequest]) (*connect.Response[fspb.StatResponse], error) {
	s.record(req)
	sb, name, err := target(ctx, req, req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	fi, err := sb.root.Lstat(name)
	if err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(&fspb.StatResponse{Entry: entry(name, fi)}), nil
}

func (s *filesystemService) MakeDir(ctx context.Context, req *connect.Request[fspb.MakeDirRequest]) (*connect.Response[fspb.MakeDirResponse], error) {
	s.record(req)
	sb, name, err := target(ctx, req, req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	if fi, err := sb.root.Lstat(name); err == nil {
		if fi.IsDir() {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("directory %s already exists", req.Msg.GetPath()))
		}
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s exists and is not a directory", req.Msg.GetPath()))
	}
	if err := sb.root.MkdirAll(name, 0o755); err != nil {
		return nil, fsError(err)
	}
	fi, err := sb.root.Lstat(name)
	if err != nil {
		return nil, fsError(err)
	}
	sb.notify("/"+name, eventCreate)
	return connect.NewResponse(&fspb.MakeDirResponse{Entry: entry(name, fi)}), nil
}

func (s *filesystemService) Move(ctx context.Context, req *connect.Request[fspb.MoveRequest]) (*connect.Response[fspb.MoveResponse], error) {
	s.record(req)
	sb, src, err := target(ctx, req, req.Msg.GetSource())
	if err != nil {
		return nil, err
	}
	_, dst, err := target(ctx, req, req.Msg.GetDestination())
	if err != nil {
		return nil, err
	}
	if err := sb.root.Rename(src, dst); err != nil {
		return nil, fsError(err)
	}
	fi, err := sb.root.Lstat(dst)
	if err != nil {
		return nil, fsError(err)
	}
	sb.notify("/"+src, eventRename)
	sb.notify("/"+dst, eventCreate)
	return connect.NewResponse(&fspb.MoveResponse{Entry: entry(dst, fi)}), nil
}

func (s *filesystemService) Remove(ctx context.Context, req *connect.Request[fspb.RemoveRequest]) (*connect.Response[fspb.RemoveResponse], error) {
	s.record(req)
	sb, name, err := target(ctx, req, req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	if _, err := sb.root.Lstat(name); err != nil {
		return nil, fsError(err)
	}
	if err := sb.root.RemoveAll(name); err != nil {
		return nil, fsError(err)
	}
	sb.notify("/"+name, eventRemove)
	return connect.NewResponse(&fspb.RemoveResponse{}), nil
}

func (s *filesystemService) ListDir(ctx context.Context, req *connect.Request[fspb.ListDirRequest]) (*connect.Response[fspb.ListDirResponse], error) {
	s.record(req)
	sb, name, err := target(ctx, req, req.Msg.GetPath())
	if err != nil {
		return nil, err
	}
	depth := int(req.Msg.GetDepth())
	if depth == 0 {
		depth = 1
	}
	fi, err := sb.root.Stat(name)
	if err != nil {
		return nil, fsError(err)
	}
	if !fi.IsDir() {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s is not a directory", req.Msg.GetPath()))
	}
	res := &fspb.ListDirResponse{}
	var walk func(dir string, level int) error
	walk = func(dir string, level int) error {
		d, err := sb.root.Open(dir)
		if err != nil {
			return err
		}
		entries, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return err
		}
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		for _, e := range entries {
			child := path.Join(dir, e.Name())
			info, err := e.Info()
			if err != nil {
				continue
			}
			res.Entries = append(res.Entries, entry(child, info))
			if e.IsDir() && level < depth {
				if err := walk(child, level+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(name, 1); err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(res), nil
}

func (s *filesystemService) WatchDir(ctx context.Context, req *connect.Request[fspb.WatchDirRequest], stream *connect.ServerStream[fspb.WatchDirResponse]) error {
	s.record(req)
	sb, name, err := target(ctx, req, req.Msg.GetPath())
	if err != nil {
		return err
	}
	fi, err := sb.root.Stat(name)
	if err != nil {
		return fsError(err)
	}
	if !fi.IsDir() {
		return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s is not a directory", req.Msg.GetPath()))
	}
	w := &watcher{dir: path.Clean("/" + name), recursive: req.Msg.GetRecursive(), events: make(chan *fspb.FilesystemEvent, 64)}
	sb.addWatcher(w)
	defer sb.removeWatcher(w)
	if err := stream.Send(&fspb.WatchDirResponse{Event: &fspb.WatchDirResponse_Start{Start: &fspb.WatchDirResponse_StartEvent{}}}); err != nil {
		return err
	}
	for {
		select {
		case ev := <-w.events:
			if err := stream.Send(&fspb.WatchDirResponse{Event: &fspb.WatchDirResponse_Filesystem{Filesystem: ev}}); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.f.ctx.Done():
			return connect.NewError(connect.CodeUnavailable, errors.New("fake server closing"))
		}
	}
}
