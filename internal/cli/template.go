package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/image"
)

func newTemplateCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "template",
		Short: "Manage templates: root file systems sandboxes can be created from",
		Long: `A template other than the built-in host template is an image: a root file
system imported once from a tar stream (mmdebstrap's output, docker export,
tar -C DIR -c .). Sandboxes of the template see the image's /usr, /bin, /sbin,
/lib*, /opt read-only and its /etc (world-readable files) with SoulBox's own
passwd, group, hosts and resolver files. Images are host-wide, kept in
` + image.DefaultDir + ` (or $SOULBOX_IMAGES_DIR), whatever the data directory.

` + "`make template-julia`" + ` builds the julia template from Debian's packages.`,
	}
	c.AddCommand(newTemplateImportCmd(), newTemplateListCmd(), newTemplateRemoveCmd())
	return c
}

func imageStore() image.Store { return image.Store{} }

// imageErr maps the image store's errors to exit statuses: bad names and
// archives are usage errors.
func imageErr(err error) error {
	if errors.Is(err, image.ErrInvalid) || errors.Is(err, image.ErrExists) || errors.Is(err, image.ErrNotFound) {
		return &exitError{code: exitUsage, err: err}
	}
	return err
}

func newTemplateImportCmd() *cobra.Command {
	var replace bool
	c := &cobra.Command{
		Use:   "import NAME FILE|-",
		Short: "Import a root file system tar (FILE, or - for stdin) as the template NAME (needs root)",
		Args:  usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			r := cmd.InOrStdin()
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return usageErrorf("%v", err)
				}
				defer f.Close()
				r = f
			}
			t0 := time.Now()
			info, err := imageStore().Import(args[0], r, replace)
			if err != nil {
				return imageErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported template %s: %d entries, %s of files (%d device nodes skipped) in %.1fs\n",
				info.Name, info.Files, mib(info.Bytes), info.Skipped, time.Since(t0).Seconds())
			return nil
		},
	}
	c.Flags().BoolVar(&replace, "replace", false, "replace a template of that name (sandboxes running on it keep the old one)")
	return c
}

func newTemplateListCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "list",
		Short: "List the templates: the built-in host template and the imported images",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			store := imageStore()
			store.EmptyTrash() // what removed templates' last sandboxes left
			infos, err := store.List()
			if err != nil {
				return err
			}
			if asJSON {
				if infos == nil {
					infos = []image.Info{}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSIZE\tFILES\tIMPORTED")
			for _, b := range image.Builtin {
				fmt.Fprintf(w, "%s\t-\t-\tbuilt in (the host's /usr)\n", b)
			}
			for _, i := range infos {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", i.Name, mib(i.Bytes), i.Files, i.ImportedAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the imported images as JSON")
	return c
}

func newTemplateRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "rm NAME",
		Aliases: []string{"remove"},
		Short:   "Remove an imported template (sandboxes running on it keep working)",
		Args:    usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := imageStore().Remove(args[0]); err != nil {
				return imageErr(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed template %s\n", args[0])
			return nil
		},
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
