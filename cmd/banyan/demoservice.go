package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/demo"
	"github.com/spf13/cobra"
)

// newDemoServiceCmd runs one demo service on its own, as docker-compose
// does: `banyan demo-service legacy|orders --listen ADDR [--dsn DSN]`.
func newDemoServiceCmd() *cobra.Command {
	var listen, dsn string
	var seed int
	cmd := &cobra.Command{
		Use:       "demo-service legacy|orders --listen ADDR [--dsn DSN]",
		Short:     "Run the demo legacy monolith or the new orders service alone (in memory, or on its MySQL schema)",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"legacy", "orders"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "legacy" && args[0] != "orders" {
				return fmt.Errorf("unknown demo service %q: the demo services are legacy and orders", args[0])
			}
			var h http.Handler
			var store demo.Store
			if dsn == "" {
				store = demo.NewShop(seed)
			} else {
				db, err := cdc.OpenDB(dsn)
				if err != nil {
					return err
				}
				defer db.Close()
				if err := db.PingContext(cmd.Context()); err != nil {
					return fmt.Errorf("demo database unreachable: %w", err)
				}
				switch args[0] {
				case "legacy":
					l := demo.LegacyDB{DB: db}
					var n int
					if err := db.QueryRowContext(cmd.Context(), "SELECT COUNT(*) FROM t_order").Scan(&n); err != nil {
						return fmt.Errorf("legacy schema missing (create it with demo.LegacySchema / deploy/mysql): %w", err)
					}
					if n == 0 && seed > 0 {
						if err := l.Seed(cmd.Context(), demo.SeedOrders(seed)); err != nil {
							return err
						}
					}
					store = l
				default:
					store = demo.OrdersDB{DB: db}
				}
			}
			h = demo.OrdersService(store)
			if args[0] == "legacy" {
				h = demo.Legacy(store)
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
			slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).Info("demo service", "service", args[0], "listen", ln.Addr().String(), "database", dsn != "")
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address to serve on")
	cmd.Flags().StringVar(&dsn, "dsn", "", "MySQL/MariaDB DSN of the service's schema (empty: in memory)")
	cmd.Flags().IntVar(&seed, "seed", 300, "orders to seed (in memory, or an empty legacy table)")
	return cmd
}
