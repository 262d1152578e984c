package cli

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/quickrun"

	"github.com/soulbox-dev/soulbox/internal/auth"
	"github.com/soulbox-dev/soulbox/internal/store"
)

const defaultDataDir = quickrun.DefaultDataDir

func newAPIKeyCmd() *cobra.Command {
	var dataDir string
	c := &cobra.Command{
		Use:   "apikey",
		Short: "Create, list and revoke API keys (works whether or not the daemon runs)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("apikey needs a subcommand: create, ls or revoke")
		},
	}
	c.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir, "SoulBox data directory")
	openStore := func(cmd *cobra.Command) (*store.Store, error) {
		return store.Open(cmd.Context(), dataDir)
	}

	var name, team string
	var e2bShape bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a key; the key is printed once, on the last line",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			prefix := auth.PrefixSoulBox
			if e2bShape {
				prefix = auth.PrefixE2B
			}
			key, rec, err := s.CreateAPIKey(cmd.Context(), name, team, prefix)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created API key %s (team %s); it is shown only once:\n", rec.ID, rec.Team)
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name to recognise the key by")
	create.Flags().StringVar(&team, "team", "", "team id: keys of one team see each other's sandboxes (default: a team of its own)")
	create.Flags().BoolVar(&e2bShape, "e2b", false, `issue the key in E2B's shape ("e2b_" + 40 hex digits)`)

	ls := &cobra.Command{
		Use:   "ls",
		Short: "List keys (never the keys themselves)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			keys, err := s.ListAPIKeys(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tKEY\tNAME\tTEAM\tCREATED\tSTATE")
			for _, k := range keys {
				state := "active"
				if k.RevokedAt != nil {
					state = "revoked " + k.RevokedAt.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Hint, k.Name, k.Team, k.CreatedAt.Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a key by its id",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("revoke takes exactly one key id (see soulbox apikey ls)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openStore(cmd)
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.RevokeAPIKey(cmd.Context(), args[0]); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return &exitError{code: exitFailure, err: err}
				}
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "revoked API key %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(create, ls, revoke)
	return c
}
