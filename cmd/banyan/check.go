package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/banyanhq/banyan/cdc"
	"github.com/banyanhq/banyan/cdc/check"
	"github.com/banyanhq/banyan/routes"
	"github.com/go-sql-driver/mysql"
	"github.com/spf13/cobra"
)

type checkFlags struct {
	config, source, target, tables, fixSQL, format, state string
	chunk, maxRate, sample                                int
	resume                                                bool
	recheck                                               time.Duration
}

func newCheckCmd() *cobra.Command {
	var f checkFlags
	cmd := &cobra.Command{
		Use:   "check (--config FILE | --source DSN --target DSN --tables a,b)",
		Short: "Prove the legacy and new tables hold the same data; exit 0 consistent, 1 differences, 2 could not check",
		Example: "  banyan check --config banyan.yaml --fix-sql fix.sql\n" +
			"  banyan check --source 'root@tcp(10.0.0.1:3306)/shop' --target 'root@tcp(10.0.0.2:3306)/shop' --tables t_order,t_user",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "config file: check the cdc.tables mapping (renames and converters applied)")
	fl.StringVar(&f.source, "source", "", "legacy DSN (with --target and --tables, for identical schemas without a config)")
	fl.StringVar(&f.target, "target", "", "new DSN")
	fl.StringVar(&f.tables, "tables", "", "comma-separated tables to check (default: every mapped table)")
	fl.IntVar(&f.chunk, "chunk-size", 1000, "rows per chunk")
	fl.StringVar(&f.fixSQL, "fix-sql", "", "write the INSERT/UPDATE/DELETE statements that make the target match to this file (never executed)")
	fl.StringVar(&f.format, "format", "text", "output: text or json")
	fl.BoolVar(&f.resume, "resume", false, "continue an interrupted check from its last chunk")
	fl.StringVar(&f.state, "state", "", "progress file for --resume (default banyan-check.state.json beside the config, or in the current folder)")
	fl.IntVar(&f.sample, "sample", 10, "differing rows shown per table (all of them go to --fix-sql)")
	fl.IntVar(&f.maxRate, "max-rows-per-sec", 0, "throttle reads to this many rows per second (0 = no limit)")
	fl.DurationVar(&f.recheck, "recheck-after", 2*time.Second, "wait this long (or until CDC has applied the source's position) before re-checking a difference")
	return cmd
}

func runCheck(ctx context.Context, stdout, stderr io.Writer, f checkFlags) error {
	if f.format != "text" && f.format != "json" {
		return fmt.Errorf("unknown --format %q: use text or json", f.format)
	}
	cdcCfg, statePath, err := checkConfig(f)
	if err != nil {
		return err
	}
	if f.state != "" {
		statePath = f.state
	}
	src, err := cdc.OpenDB(cdcCfg.Source.DSN)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close()
	dst, err := cdc.OpenDB(cdcCfg.Target.DSN)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	defer dst.Close()
	if err := errors.Join(src.PingContext(ctx), dst.PingContext(ctx)); err != nil {
		return fmt.Errorf("could not connect: %w", err)
	}
	zone, err := cdc.SourceZone(cdcCfg)
	if err != nil {
		return err
	}
	sdb := &cdc.SourceDB{DB: src, Flavor: cdcCfg.Source.Flavor}
	maps, err := sdb.Maps(ctx, cdcCfg.Tables, zone)
	if err != nil {
		return err
	}
	var fix *os.File
	if f.fixSQL != "" {
		if fix, err = os.Create(f.fixSQL); err != nil {
			return fmt.Errorf("fix SQL file: %w", err)
		}
		defer fix.Close()
		fmt.Fprintf(fix, "-- banyan check %s: statements that make the target match the source. Review, then apply to the target.\n", time.Now().UTC().Format(time.RFC3339))
		// The text below is UTF-8: a client whose default character set
		// is another (latin1, or utf8mb3 without 4-byte characters) would
		// otherwise store it garbled or refuse it.
		fmt.Fprintln(fix, "SET NAMES utf8mb4;")
	}
	c := &check.Checker{Source: sdb, Target: dst, Maps: maps, Opts: check.Options{
		ChunkSize: f.chunk, MaxRowsPerSec: f.maxRate, RecheckAfter: f.recheck, Sample: f.sample,
		StatePath: statePath, Resume: f.resume, Progress: stderr,
	}}
	if fix != nil {
		c.Opts.Fix = fix
	}
	res, err := c.Run(ctx)
	if errors.Is(err, check.ErrStateNotSaved) {
		return fmt.Errorf("check stopped: %w", err)
	} else if err != nil {
		return fmt.Errorf("check stopped (run again with --resume to continue): %w", err)
	}
	if f.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printCheck(stdout, res, f.fixSQL)
	}
	if !res.Consistent {
		return failed(errors.New("the target differs from the source"))
	}
	return nil
}

// checkConfig builds the table list from --config or from --source,
// --target and --tables.
func checkConfig(f checkFlags) (routes.CDCConfig, string, error) {
	var only []string
	if f.tables != "" {
		for _, name := range strings.Split(f.tables, ",") {
			if name = strings.TrimSpace(name); name != "" {
				only = append(only, name)
			}
		}
	}
	if f.config != "" {
		cfg, err := loadConfig(f.config)
		if err != nil {
			return routes.CDCConfig{}, "", err
		}
		c := cfg.CDC
		if len(c.Tables) == 0 {
			return c, "", fmt.Errorf("%s has no cdc.tables to check; or use --source, --target and --tables", f.config)
		}
		if only != nil {
			var keep []routes.TableMapping
			found := map[string]bool{}
			for _, t := range c.Tables {
				_, name, _ := strings.Cut(t.Source, ".")
				for _, o := range only {
					if o == t.Source || o == name {
						found[o] = true
						keep = append(keep, t)
						break
					}
				}
			}
			// A table asked for and not checked must not end in a
			// "consistent" verdict.
			var missing []string
			for _, o := range only {
				if !found[o] {
					missing = append(missing, o)
				}
			}
			if len(missing) > 0 {
				return c, "", fmt.Errorf("--tables %s: not mapped in %s's cdc.tables; check the names (db.table or table) or add a mapping", strings.Join(missing, ", "), f.config)
			}
			c.Tables = keep
		}
		return c, filepath.Join(filepath.Dir(f.config), "banyan-check.state.json"), nil
	}
	if f.source == "" || f.target == "" || len(only) == 0 {
		return routes.CDCConfig{}, "", errors.New("give --config FILE, or --source DSN --target DSN --tables a,b")
	}
	sdb, err := dbName(f.source)
	if err != nil {
		return routes.CDCConfig{}, "", fmt.Errorf("--source: %w", err)
	}
	tdb, err := dbName(f.target)
	if err != nil {
		return routes.CDCConfig{}, "", fmt.Errorf("--target: %w", err)
	}
	c := routes.CDCConfig{Source: routes.CDCSource{DSN: f.source, Flavor: "mariadb"}, Target: routes.CDCTarget{DSN: f.target}}
	for _, t := range only {
		c.Tables = append(c.Tables, routes.TableMapping{Source: sdb + "." + t, Target: tdb + "." + t})
	}
	return c, "banyan-check.state.json", nil
}

func dbName(dsn string) (string, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", err
	}
	if cfg.DBName == "" {
		return "", fmt.Errorf("%q names no database: end it with /dbname", dsn)
	}
	return cfg.DBName, nil
}

func printCheck(w io.Writer, res *check.Result, fixPath string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tTARGET\tROWS\tCHUNKS\tMISMATCHED\tMISSING IN TARGET\tEXTRA IN TARGET")
	differ := 0
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", t.Source, t.Target, t.Rows, t.Chunks, t.Mismatched, t.Missing, t.Extra)
		if !t.Consistent {
			differ++
		}
	}
	tw.Flush()
	for _, t := range res.Tables {
		for _, d := range t.Sample {
			keys := make([]string, 0, len(d.Key))
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range d.Key {
					if !yield(k) {
						return
					}
				}
			}) {
				keys = append(keys, k+"="+d.Key[k])
			}
			fmt.Fprintf(w, "  %s %s: %s", t.Target, strings.Join(keys, ","), d.Kind)
			for _, c := range d.Columns {
				fmt.Fprintf(w, "; %s: source %s, target %s", c.Column, c.Source, c.Target)
			}
			fmt.Fprintln(w)
		}
	}
	if res.Consistent {
		fmt.Fprintf(w, "verdict: CONSISTENT — %d %s, every row equal\n", len(res.Tables), plural(len(res.Tables), "table", "tables"))
		return
	}
	hint := ""
	if fixPath != "" {
		hint = "; fix SQL in " + fixPath
	}
	fmt.Fprintf(w, "verdict: DIFFERENT — %d of %d %s %s%s\n", differ, len(res.Tables), plural(len(res.Tables), "table", "tables"), plural(differ, "differs", "differ"), hint)
}
