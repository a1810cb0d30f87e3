package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/banyanhq/banyan/routes"
	"github.com/banyanhq/banyan/xds"
	"github.com/spf13/cobra"
)

func newValidateCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "validate --config FILE",
		Short: "Check a config file; exit 0 when valid, 1 listing every problem",
		Long: `Checks a config file the way serve loads it: every problem is listed
with its field. With xds.listen set, the route table is also translated
into Envoy resources, as serve does before it starts. The admin token
variable (admin.token_env), when set, must hold a token serve accepts; an
admin listener off loopback with no token set is noted.
Exit 0 valid, 1 problems found, 2 could not run (unreadable file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(path, checkAdminToken)
			if err != nil {
				if errors.Is(err, routes.ErrInvalidConfig) {
					return failed(err)
				}
				return err
			}
			if cfg.XDS.Listen != "" {
				if _, err := translateFile(cmd.Context(), cfg); err != nil {
					if errors.Is(err, xds.ErrInvalidResources) {
						return failed(xdsProblems(path, err))
					}
					return err
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid (%d routes, %d backends)\n", path, len(cfg.Routes), len(cfg.Backends))
			if len(cfg.Routes) > 0 && os.Getenv(cfg.Admin.TokenEnv) == "" && !routes.IsLoopback(cfg.Admin.Listen) {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: admin.listen %s is off loopback: serve starts only with %s set to a token (it is not set here)\n", cfg.Admin.Listen, cfg.Admin.TokenEnv)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "config", "banyan.yaml", "config file")
	return cmd
}

// xdsProblems lists the resources serve would refuse to publish, one per
// line, the way config problems are listed.
func xdsProblems(path string, err error) error {
	lines := strings.Split(strings.TrimPrefix(err.Error(), xds.ErrInvalidResources.Error()+": "), "\n")
	var b strings.Builder
	fmt.Fprintf(&b, "%s: xds.listen is set, but Envoy resources cannot be built from this table (serve would refuse to start); %d problem(s):", path, len(lines))
	for _, l := range lines {
		b.WriteString("\n  - xds: ")
		b.WriteString(l)
	}
	return errors.New(b.String())
}
