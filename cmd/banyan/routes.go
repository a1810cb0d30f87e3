package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/banyanhq/banyan/routes"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// routesFlags are shared by the routes subcommands. --admin falls back to
// BANYAN_ADMIN, the token always comes from BANYAN_ADMIN_TOKEN.
type routesFlags struct {
	v      *viper.Viper
	format string
}

func (f *routesFlags) client() (*routes.Client, error) {
	who := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	// The variable may hold the server's "label:TOKEN" form; send the token.
	// A list of several (the server's own setting) names no one token.
	tok := os.Getenv(routes.DefaultTokenEnv)
	switch ts := routes.ParseTokens(tok); {
	case len(ts) == 1:
		for t := range ts {
			tok = t
		}
	case len(ts) > 1:
		labels := slices.Sorted(maps.Values(ts))
		return nil, fmt.Errorf("%s holds %d tokens (labels %s), as the server's setting does; set it to the one token this command should use, e.g. %s=%s:TOKEN",
			routes.DefaultTokenEnv, len(ts), strings.Join(labels, ", "), routes.DefaultTokenEnv, labels[0])
	}
	base := f.v.GetString("admin")
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--admin %q is not an admin URL: write it as http://HOST:PORT, e.g. --admin http://%s", base, strings.TrimPrefix(base, "//"))
	}
	return &routes.Client{Base: base, Token: tok, User: who}, nil
}

func (f *routesFlags) output(w io.Writer, v any, text func(io.Writer)) error {
	switch f.format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "text", "":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		text(tw)
		return tw.Flush()
	}
	return fmt.Errorf("unknown --format %q: use text or json", f.format)
}

func newRoutesCmd() *cobra.Command {
	f := &routesFlags{v: viper.New()}
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List, edit, roll back and audit route weights on a running banyan",
		// A bad --format is refused before the admin API is called, so an
		// edit is never made by a command that then fails on its output.
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch f.format {
			case "text", "json", "":
				return nil
			}
			return fmt.Errorf("unknown --format %q: use text or json", f.format)
		},
	}
	cmd.PersistentFlags().String("admin", "http://127.0.0.1:9901", "admin API URL (env BANYAN_ADMIN); token from env "+routes.DefaultTokenEnv)
	cmd.PersistentFlags().StringVar(&f.format, "format", "text", "output: text or json")
	_ = f.v.BindPFlag("admin", cmd.PersistentFlags().Lookup("admin"))
	_ = f.v.BindEnv("admin", "BANYAN_ADMIN")

	list := &cobra.Command{
		Use:   "list",
		Short: "Show every route with its live split",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			resp, err := c.Routes(cmd.Context())
			if err != nil {
				return err
			}
			return f.output(cmd.OutOrStdout(), resp, func(w io.Writer) {
				fmt.Fprintln(w, "ROUTE\tMATCH\tSPLIT\tSTICKY\tFILE SPLIT")
				for _, r := range resp.Routes {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.Name, describeMatch(r.Match), r.Split, describeSticky(r.Sticky), r.FileSplit)
				}
			})
		},
	}
	var reason string
	set := &cobra.Command{
		Use:     "set ROUTE BACKEND=WEIGHT...",
		Short:   "Change a route's weights (they must sum to 100)",
		Example: "  banyan routes set orders-read legacy=80 orders-svc=20 --reason \"ramp step 1\"",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			split, err := routes.ParseSplit(args[1:])
			if err != nil {
				return failed(fmt.Errorf("%w; write e.g. legacy=80 orders-svc=20", err))
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			resp, err := c.SetSplit(cmd.Context(), args[0], split, reason)
			if err != nil {
				return apiFailure(err)
			}
			return f.output(cmd.OutOrStdout(), resp, func(w io.Writer) { printEdit(w, args[0], resp) })
		},
	}
	set.Flags().StringVar(&reason, "reason", "", "why, recorded in the history")
	var rollbackEdit int64
	rollback := &cobra.Command{
		Use:   "rollback ROUTE [--edit SEQ]",
		Short: "Return a route to the split it had before its latest edit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			resp, err := c.RollbackEdit(cmd.Context(), args[0], rollbackEdit, reason)
			if err != nil {
				return apiFailure(err)
			}
			return f.output(cmd.OutOrStdout(), resp, func(w io.Writer) { printEdit(w, args[0], resp) })
		},
	}
	rollback.Flags().StringVar(&reason, "reason", "", "why, recorded in the history")
	rollback.Flags().Int64Var(&rollbackEdit, "edit", 0, "history number (SEQ in routes history) of the edit to undo; refused, exit 1, when another is next in line (someone rolled it back already)")
	history := &cobra.Command{
		Use:   "history [ROUTE]",
		Short: "Show who changed which weights, when and why (newest first)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			route := ""
			if len(args) == 1 {
				route = args[0]
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			resp, err := c.History(cmd.Context(), route)
			if err != nil {
				return apiFailure(err)
			}
			return f.output(cmd.OutOrStdout(), resp, func(w io.Writer) {
				fmt.Fprintln(w, "SEQ\tWHEN (UTC)\tWHO\tROUTE\tACTION\tOLD -> NEW\tREASON")
				for _, e := range resp.History {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s -> %s\t%s\n", e.Seq, e.At.UTC().Format("2006-01-02 15:04:05"), e.Who, e.Route, e.Action, splitOrNone(e.Old), e.New, e.Reason)
				}
			})
		},
	}
	cmd.AddCommand(list, set, rollback, history)
	return cmd
}

// apiFailure maps the admin API's refusal of the edit itself (400 bad
// split, 404 unknown route, 409 nothing to roll back) to exit 1, and the
// history of an unknown route (404) too. Anything
// else could not run the edit and stays exit 2: an unreachable admin, a
// refused token, a server error (5xx: the edit was not saved) or an answer
// no banyan gives (--admin pointing at something else).
func apiFailure(err error) error {
	var ae *routes.APIError
	if !errors.As(err, &ae) {
		return err
	}
	switch ae.Status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict:
		return failed(err)
	}
	if ae.Status >= 500 {
		return fmt.Errorf("%w\ncheck `banyan routes list` and the banyan serve log before running it again", err)
	}
	return err
}

func printEdit(w io.Writer, route string, resp routes.EditResponse) {
	if !resp.Changed {
		fmt.Fprintf(w, "%s: unchanged, already at the requested split\n", route)
		return
	}
	e := resp.Edit
	fmt.Fprintf(w, "%s: %s -> %s\t(%s #%d by %s)\n", e.Route, e.Old, e.New, e.Action, e.Seq, e.Who)
}

func describeMatch(m routes.MatchConfig) string {
	var parts []string
	if len(m.Methods) > 0 {
		parts = append(parts, strings.Join(m.Methods, ","))
	}
	switch {
	case m.Path != "":
		parts = append(parts, "="+m.Path)
	case m.PathPrefix != "":
		parts = append(parts, m.PathPrefix+"*")
	case m.PathTemplate != "":
		parts = append(parts, m.PathTemplate)
	}
	for _, h := range slices.Sorted(maps.Keys(m.Headers)) {
		parts = append(parts, h+":"+m.Headers[h])
	}
	if len(parts) == 0 {
		return "(default)"
	}
	return strings.Join(parts, " ")
}

func describeSticky(s routes.StickyConfig) string {
	switch {
	case s.Cookie != "":
		return "cookie " + s.Cookie
	case s.Header != "":
		return "header " + s.Header
	}
	return "-"
}

// splitOrNone renders a history entry's old split; a route's first entry
// has none.
func splitOrNone(s routes.Split) string {
	if s == nil {
		return "(none)"
	}
	return s.String()
}
