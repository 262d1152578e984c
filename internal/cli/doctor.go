package cli

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/soulbox-dev/soulbox/internal/doctor"
)

func newDoctorCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check that this host can run sandboxes, and say how to fix what is missing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !doctor.Run(cmd.OutOrStdout()) {
				return &exitError{code: exitFailure, err: errors.New("this host is missing what SoulBox needs (see above)")}
			}
			return nil
		},
	}
}
