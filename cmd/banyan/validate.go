package main

import (
	"errors"
	"fmt"

	"github.com/banyanhq/banyan/routes"
	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate --config FILE",
		Short: "Check a config file; exit 0 when valid, 1 listing every problem",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path)
			if err != nil {
				if errors.Is(err, routes.ErrInvalidConfig) {
					return failed(err)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d routes, %d backends)\n", path, len(cfg.Routes), len(cfg.Backends))
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "banyan.yaml", "config file")
	return cmd
}
