package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

func (a *app) deployCommand() *cli.Command {
	return &cli.Command{
		Name:  "deploy",
		Usage: "deployments: signed orders to install packages on nodes",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "sign an order for PACKAGE... to the targets and hand it to the mesh",
				UsageText: "relaymesh deploy create PACKAGE...|--updates security|all|NAME[=VERSION]... --node ID|NAME --site S --tag T --os OS --all [--not-before T] [--window 'Sat 02:00-04:00'] [--expires 24h] [--priority N] [--bulk] [--reboot never|if-needed|always] [--timeout 10m] [--prefetch] [--allow-downgrade] [--force] [--dry-run]",
				Flags: append(adminFlags(),
					&cli.StringSliceFlag{Name: "node", Usage: "target node ID or name (repeatable)"},
					&cli.StringSliceFlag{Name: "site", Usage: "target every node of a site (repeatable)"},
					&cli.StringSliceFlag{Name: "tag", Usage: "target every node with a tag (repeatable)"},
					&cli.StringFlag{Name: "os", Usage: "only nodes of this OS (linux, windows, ...)"},
					&cli.BoolFlag{Name: "all", Usage: "target every enrolled node"},
					&cli.StringFlag{Name: "not-before", Usage: "do not install before this time (RFC 3339)"},
					&cli.StringFlag{Name: "window", Usage: "maintenance window in the node's local time, e.g. 'Sat 02:00-04:00'"},
					&cli.StringFlag{Name: "expires", Usage: "the order expires this long after not-before (default 24h; the coordinator refuses more than its max_order_lifetime, 168h by default)"},
					&cli.IntFlag{Name: "priority", Value: -1, Usage: "0 (first) to 10; default: the packages' own"},
					&cli.BoolFlag{Name: "bulk", Usage: "stop at the first failure and roll back (default: one-by-one)"},
					&cli.StringFlag{Name: "reboot", Value: "never", Usage: "never, if-needed or always"},
					&cli.StringFlag{Name: "timeout", Usage: "install time budget for the whole order, e.g. 10m"},
					&cli.BoolFlag{Name: "prefetch", Usage: "download before the window opens; install inside it"},
					&cli.BoolFlag{Name: "allow-downgrade", Usage: "install over a newer version of the same package name (otherwise nodes refuse with ERR_DOWNGRADE)"},
					&cli.BoolFlag{Name: "force", Usage: "install again on nodes that installed the packages before (otherwise they report ERR_ALREADY_SETUP)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "resolve the targets and check the order, print them, sign nothing"},
					&cli.StringSliceFlag{Name: "updates", Usage: "a patch deployment instead of packages: security, all, or NAME[=VERSION] (repeatable; more names may follow as arguments), resolved from the targets' last scans; the coordinator mirrors the repository's verified files"},
				),
				Action: a.deployCreate,
			},
			a.deployUninstallCommand(),
			{
				Name: "list", Usage: "list deployments, newest first", Flags: adminFlags(),
				Action: func(c *cli.Context) error {
					cl, err := a.client(c)
					if err != nil {
						return err
					}
					ds, err := cl.Deployments(c.Context)
					if err != nil {
						return apiErr("deploy list", err)
					}
					if c.Bool("json") {
						return a.printJSON(ds)
					}
					w := a.table()
					fmt.Fprintln(w, "ID\tSTATE\tTARGETS\tSUCCESS\tERRORS\tPENDING\tCREATED")
					for _, d := range ds {
						ok, bad, pending := tally(d)
						fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", d.ID, d.State, d.Targets, ok, bad, pending, d.Created.Local().Format("2006-01-02 15:04"))
					}
					return w.Flush()
				},
			},
			{
				Name: "show", Usage: "per-status counts, per-site table and per-node rows", ArgsUsage: "ID",
				Flags: append(adminFlags(),
					&cli.BoolFlag{Name: "watch", Usage: "refresh until the deployment is done"},
					&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "refresh interval with --watch"},
					&cli.BoolFlag{Name: "archived", Usage: "also list the rows deploy validate cleared"},
				),
				Action: a.deployShow,
			},
			{
				Name: "cancel", Usage: "cancel (allowed while scheduled, or while no node is mid-install)", ArgsUsage: "ID", Flags: adminFlags(),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("deploy cancel: give one deployment ID")
					}
					cl, err := a.client(c)
					if err != nil {
						return err
					}
					d, err := cl.CancelDeployment(c.Context, c.Args().First())
					if err != nil {
						return apiErr("deploy cancel", err)
					}
					if c.Bool("json") {
						return a.printJSON(d)
					}
					fmt.Fprintf(a.stdout, "deployment %s %s\n", d.ID, d.State)
					return nil
				},
			},
			{
				Name: "validate", Usage: "clear SUCCESS and ERR_ALREADY_SETUP rows; with --all also unaffect nodes never notified", ArgsUsage: "ID",
				Flags: append(adminFlags(),
					&cli.BoolFlag{Name: "success", Usage: "clear SUCCESS and ERR_ALREADY_SETUP rows (the default)"},
					&cli.BoolFlag{Name: "all", Usage: "also unaffect nodes never notified"},
				),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("deploy validate: give one deployment ID")
					}
					cl, err := a.client(c)
					if err != nil {
						return err
					}
					n, err := cl.ValidateDeployment(c.Context, c.Args().First(), c.Bool("all"))
					if err != nil {
						return apiErr("deploy validate", err)
					}
					if c.Bool("json") {
						return a.printJSON(struct {
							DeploymentID string `json:"deployment_id"`
							Cleared      int    `json:"cleared"`
						}{c.Args().First(), n})
					}
					fmt.Fprintf(a.stdout, "%d rows cleared\n", n)
					return nil
				},
			},
		},
	}
}

func (a *app) deployCreate(c *cli.Context) error {
	var updates, pkgs []string
	if c.IsSet("updates") {
		updates = append(c.StringSlice("updates"), c.Args().Slice()...)
	} else {
		pkgs = c.Args().Slice()
	}
	if len(pkgs) == 0 && len(updates) == 0 {
		return usageErrorf("deploy create: give at least one package ID (see 'relaymesh package list'), or --updates security|all|NAME[=VERSION]")
	}
	req := coordinator.DeployRequest{
		Packages: pkgs, Updates: updates, Nodes: c.StringSlice("node"), Sites: c.StringSlice("site"),
		Tags: c.StringSlice("tag"), OS: c.String("os"), All: c.Bool("all"),
		NotBefore: c.String("not-before"), Window: c.String("window"), Expires: c.String("expires"),
		Bulk: c.Bool("bulk"), Reboot: c.String("reboot"), Timeout: c.String("timeout"), Prefetch: c.Bool("prefetch"),
		AllowDowngrade: c.Bool("allow-downgrade"), Force: c.Bool("force"),
		DryRun: c.Bool("dry-run"),
	}
	return a.submitDeployment(c, "deploy create", req)
}

// submitDeployment checks req's flags, sends it and prints the deployment
// (or, with --dry-run, what it would be).
func (a *app) submitDeployment(c *cli.Context, cmd string, req coordinator.DeployRequest) error {
	if p := c.Int("priority"); p != -1 {
		if p < 0 || p > 10 {
			return usageErrorf("%s: --priority %d: must be between 0 and 10", cmd, p)
		}
		req.Priority = &p
	}
	switch req.Reboot {
	case "never", "if-needed", "always":
	default:
		return usageErrorf("%s: --reboot %q: want never, if-needed or always", cmd, req.Reboot)
	}
	if _, err := core.ParseWindow(req.Window); err != nil {
		return usageErrorf("%s: --window: %v", cmd, err)
	}
	if !req.All && len(req.Nodes)+len(req.Sites)+len(req.Tags) == 0 {
		return usageErrorf("%s: no targets: give --node, --site, --tag or --all", cmd)
	}
	cl, err := a.client(c)
	if err != nil {
		return err
	}
	d, err := cl.CreateDeployment(c.Context, req)
	if err != nil {
		return apiErr(cmd, err)
	}
	if c.Bool("json") {
		return a.printJSON(d)
	}
	if d.DryRun {
		fmt.Fprintf(a.stdout, "dry run: %s would go to %s; nothing signed\n", strings.Join(d.Packages, ", "), plural(d.Targets, "target"))
		return writeTargets(a.stdout, d.Resolved)
	}
	if a.quiet {
		fmt.Fprintln(a.stdout, d.ID)
		return nil
	}
	fmt.Fprintf(a.stdout, "deployment %s: %s, %s, order sequence %d\n", d.ID, d.State, plural(d.Targets, "target"), d.Seq)
	return writeTargets(a.stdout, d.Resolved)
}

// writeTargets prints the nodes a deployment resolved to, one per line.
func writeTargets(out io.Writer, ts []coordinator.TargetView) error {
	w := newTable(out)
	fmt.Fprintln(w, "SITE\tNAME\tOS\tID")
	for _, t := range ts {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Site, t.Name, t.OS, t.ID)
	}
	return w.Flush()
}

// plural is "1 target", "2 targets".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (a *app) deployShow(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("deploy show: give one deployment ID")
	}
	cl, err := a.client(c)
	if err != nil {
		return err
	}
	id := c.Args().First()
	for {
		get := cl.Deployment
		if c.Bool("archived") {
			get = cl.DeploymentArchive
		}
		d, err := get(c.Context, id)
		if err != nil {
			return apiErr("deploy show", err)
		}
		if c.Bool("json") {
			if !c.Bool("watch") || d.Done {
				return a.printJSON(d)
			}
		} else {
			if c.Bool("watch") && a.isTerminal(a.stdout) {
				fmt.Fprint(a.stdout, "\033[H\033[2J")
			}
			writeDeployment(a.stdout, d)
		}
		if !c.Bool("watch") || d.Done {
			return nil
		}
		select {
		case <-c.Context.Done():
			return c.Context.Err()
		case <-time.After(c.Duration("interval")):
		}
	}
}

func tally(d *coordinator.DeploymentView) (ok, bad, pending int) {
	for st, n := range d.Counts {
		switch {
		case st.Installed():
			ok += n
		case st.Final():
			bad += n
		default:
			pending += n
		}
	}
	return
}

// writeDeployment prints a deployment as an admin reads it.
func writeDeployment(out io.Writer, d *coordinator.DeploymentView) {
	fmt.Fprintf(out, "deployment %s  %s  seq %d  priority %d  targets %d\n", d.ID, d.State, d.Seq, d.Priority, d.Targets)
	if d.Uninstall {
		fmt.Fprintf(out, "uninstall of: %s\n", strings.Join(d.Packages, ", "))
	} else {
		fmt.Fprintf(out, "packages: %s\n", strings.Join(d.Packages, ", "))
	}
	if d.Window != "" {
		fmt.Fprintf(out, "window: %s\n", d.Window)
	}
	states := make([]string, 0, len(d.Counts))
	for st := range d.Counts {
		states = append(states, string(st))
	}
	slices.Sort(states)
	var parts []string
	for _, st := range states {
		parts = append(parts, fmt.Sprintf("%s %d", st, d.Counts[core.State(st)]))
	}
	fmt.Fprintf(out, "status: %s\n", strings.Join(parts, ", "))
	progress := "elapsed " + seconds(d.ElapsedS)
	if d.BytesTotal > 0 {
		progress = fmt.Sprintf("%s of %s fetched (%d%%), %s", humanBytes(d.BytesFetched), humanBytes(d.BytesTotal),
			min(100, d.BytesFetched*100/d.BytesTotal), progress)
	}
	fmt.Fprintf(out, "progress: %s\n\n", progress)
	w := newTable(out)
	fmt.Fprintln(w, "SITE\tTOTAL\tSUCCESS\tFAILED\tPENDING")
	for _, s := range d.Sites {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\n", s.Site, s.Total, s.Success, s.Failed, s.Pending)
	}
	w.Flush()
	if len(d.Nodes) > 0 {
		fmt.Fprintln(out)
		writeRows(out, d.Nodes)
	}
	if len(d.Archived) > 0 {
		fmt.Fprintf(out, "\narchived by deploy validate (%d):\n", len(d.Archived))
		writeRows(out, d.Archived)
	}
}

// seconds renders a count of seconds as a duration, "1m20s"; "-" for 0.
func seconds(s float64) string {
	if s <= 0 {
		return "-"
	}
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// writeRows prints per-node rows.
func writeRows(out io.Writer, rows []coordinator.RowView) {
	w := newTable(out)
	fmt.Fprintln(w, "SITE\tNODE\tSTATE\tEXIT\tTIME\tFETCHED\tUPDATED\tDETAIL")
	for _, r := range rows {
		state := string(r.State)
		exit := "-"
		switch {
		case r.State == core.StateSuccess,
			r.State == core.ErrExecute && r.ExitCode >= 0, // ran, exited with a code that is not a success code
			r.State.IsError() && r.ExitCode > 0:
			exit = fmt.Sprint(r.ExitCode)
		}
		detail := r.Detail
		if detail == "" {
			detail = lastLine(r.Output)
		}
		if len(detail) > 60 {
			detail = detail[:57] + "..."
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, r.Name, state, exit, seconds(r.DurationS), humanBytes(r.BytesFetched), r.Updated.Local().Format("15:04:05"), detail)
	}
	w.Flush()
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
