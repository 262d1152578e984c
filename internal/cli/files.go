package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/limits"
	soulbox "github.com/soulbox-dev/soulbox/sdk/go"
)

// remotePath splits "ID:/path" ("ID:rel" is relative to the user's home).
// Anything else, "-" included, is local.
func remotePath(s string) (id, p string, ok bool) {
	id, p, found := strings.Cut(s, ":")
	if !found || !sandboxIDPattern.MatchString(id) {
		return "", "", false
	}
	return id, p, true
}

func newCpCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy a file into or out of a sandbox (ID:PATH); - is stdin or stdout",
		Long: `Copy one file between this machine and a sandbox, streamed in both
directions. Exactly one of SRC and DST is ID:PATH; a relative PATH is
relative to the user's home. A local "-" is stdin (as SRC) or stdout (as
DST). A DST ending in "/" (remote) or naming a directory (local) receives
the file under its own name.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcID, srcPath, srcRemote := remotePath(args[0])
			dstID, dstPath, dstRemote := remotePath(args[1])
			switch {
			case srcRemote == dstRemote:
				return usageErrorf("exactly one of SRC and DST must be ID:PATH")
			case srcRemote && srcPath == "", dstRemote && dstPath == "":
				return usageErrorf("empty sandbox path")
			}
			if srcRemote {
				sbx, err := cf.connect(cmd, srcID)
				if err != nil {
					return err
				}
				return download(cmd, sbx, srcPath, args[1])
			}
			sbx, err := cf.connect(cmd, dstID)
			if err != nil {
				return err
			}
			return upload(cmd, sbx, args[0], dstPath)
		},
	}
	cf.register(c)
	return c
}

func upload(cmd *cobra.Command, sbx *soulbox.Sandbox, src, dst string) error {
	var r io.Reader
	if src == "-" {
		if strings.HasSuffix(dst, "/") {
			return usageErrorf("a sandbox path ending in / needs a named SRC, not -")
		}
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(src)
		if err != nil {
			return err
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil {
			return err
		} else if st.IsDir() {
			return usageErrorf("%s is a directory; cp copies one file", src)
		}
		if strings.HasSuffix(dst, "/") {
			dst += filepath.Base(src)
		}
		r = f
	}
	if err := sbx.Files.Write(cmd.Context(), dst, r); err != nil {
		return fmt.Errorf("write %s:%s: %w", sbx.ID, dst, err)
	}
	return nil
}

func download(cmd *cobra.Command, sbx *soulbox.Sandbox, src, dst string) error {
	if dst == "-" {
		if err := sbx.Files.Read(cmd.Context(), src, cmd.OutOrStdout()); err != nil {
			return fmt.Errorf("read %s:%s: %w", sbx.ID, src, err)
		}
		return nil
	}
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		dst = filepath.Join(dst, path.Base(src))
	}
	// Download next to the destination and rename, so a failed copy
	// leaves no partial file and an existing file intact.
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".soulbox-cp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := sbx.Files.Read(cmd.Context(), src, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("read %s:%s: %w", sbx.ID, src, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

func newFilesCmd() *cobra.Command {
	var cf clientFlags
	c := &cobra.Command{
		Use:   "files",
		Short: "List and watch files in a sandbox (see also 'soulbox cp')",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("files needs a subcommand: ls or watch")
		},
	}
	cf.register(c)
	c.AddCommand(newFilesLsCmd(&cf), newFilesWatchCmd(&cf))
	return c
}

func newFilesLsCmd(cf *clientFlags) *cobra.Command {
	var depth string
	var asJSON bool
	c := &cobra.Command{
		Use:   "ls ID [PATH]",
		Short: "List a directory (default: the user's home)",
		Args:  usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			dir := "."
			if len(args) == 2 {
				dir = args[1]
			}
			n, err := limits.ParseCount(depth)
			if err != nil || n > 64 {
				return usageErrorf("--depth %q: want a number from 1 to 64", depth)
			}
			sbx, err := cf.connect(cmd, args[0])
			if err != nil {
				return err
			}
			entries, err := sbx.Files.List(cmd.Context(), dir, int(n))
			if err != nil {
				return fmt.Errorf("list %s:%s: %w", args[0], dir, err)
			}
			if asJSON {
				if entries == nil {
					entries = []soulbox.EntryInfo{}
				}
				return printJSON(cmd, entries)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TYPE\tPERMISSIONS\tSIZE\tMODIFIED\tPATH")
			for _, e := range entries {
				p := e.Path
				if e.SymlinkTarget != "" {
					p += " -> " + e.SymlinkTarget
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", e.Type, e.Permissions, e.Size, formatTime(e.ModTime), p)
			}
			return w.Flush()
		},
	}
	c.Flags().StringVar(&depth, "depth", "1", "levels of subdirectories to descend")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newFilesWatchCmd(cf *clientFlags) *cobra.Command {
	var recursive bool
	c := &cobra.Command{
		Use:   "watch ID PATH",
		Short: "Print changes under a directory, one per line, until interrupted",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkID(args[0]); err != nil {
				return err
			}
			sbx, err := cf.connect(cmd, args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			w, err := sbx.Files.Watch(ctx, args[1], recursive)
			if err != nil {
				return fmt.Errorf("watch %s:%s: %w", args[0], args[1], err)
			}
			defer w.Close()
			out := cmd.OutOrStdout()
			for {
				ev, err := w.Next(ctx)
				switch {
				case errors.Is(err, io.EOF) || ctx.Err() != nil:
					return nil // interrupted
				case err != nil:
					return fmt.Errorf("watch %s:%s: %w", args[0], args[1], err)
				}
				fmt.Fprintf(out, "%s %s\n", ev.Type, ev.Name)
			}
		},
	}
	c.Flags().BoolVarP(&recursive, "recursive", "r", false, "include subdirectories")
	return c
}
