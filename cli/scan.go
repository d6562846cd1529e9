package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/coordinator"
)

func (a *app) scanCommand() *cli.Command {
	return &cli.Command{
		Name:      "scan",
		Usage:     "sign a scan order: the targets inventory their packages and available updates now",
		UsageText: "relaymesh scan --all | --site S | --node ID|NAME | --tag T [--os OS] [--expires 24h]",
		Flags: append(adminFlags(),
			&cli.StringSliceFlag{Name: "node", Usage: "target node ID or name (repeatable)"},
			&cli.StringSliceFlag{Name: "site", Usage: "target every node of a site (repeatable)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "target every node with a tag (repeatable)"},
			&cli.StringFlag{Name: "os", Usage: "only nodes of this OS"},
			&cli.BoolFlag{Name: "all", Usage: "target every enrolled node"},
			&cli.StringFlag{Name: "expires", Usage: "the order expires this long after now (default 24h)"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			req := coordinator.ScanRequest{Nodes: c.StringSlice("node"), Sites: c.StringSlice("site"), Tags: c.StringSlice("tag"),
				OS: c.String("os"), All: c.Bool("all"), Expires: c.String("expires")}
			if !req.All && len(req.Nodes) == 0 && len(req.Sites) == 0 && len(req.Tags) == 0 {
				return usageErrorf("scan: no targets: give --all, --site S, --node NAME or --tag T")
			}
			cl, err := a.client(c)
			if err != nil {
				return err
			}
			v, err := cl.CreateScan(c.Context, req)
			if err != nil {
				return apiErr("scan", err)
			}
			if c.Bool("json") {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.stdout, "scan order %s sent to %d nodes (progress: relaymesh deploy show %s; results: relaymesh updates list)\n", v.ID, v.Targets, v.ID)
			return nil
		},
	}
}

func (a *app) updatesCommand() *cli.Command {
	return &cli.Command{
		Name:  "updates",
		Usage: "updates the nodes' repositories offer and the nodes missing them, from their last scans",
		Subcommands: []*cli.Command{{
			Name:      "list",
			Usage:     "per update: package, installed → candidate version, security or not, nodes missing it by site",
			UsageText: "relaymesh updates list [--site S] [--security] [--nodes] [--json | --csv]",
			Flags: append(adminFlags(),
				&cli.StringFlag{Name: "site", Usage: "only this site's nodes"},
				&cli.BoolFlag{Name: "security", Usage: "only security updates"},
				&cli.BoolFlag{Name: "nodes", Usage: "name the nodes missing each update"},
				&cli.BoolFlag{Name: "csv", Usage: "print the audit export: one CSV row per node and missing update (and per compliant, unscanned or failed node)"},
			),
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				if c.Bool("csv") && c.Bool("json") {
					return usageErrorf("updates list: --csv and --json: choose one")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				f := coordinator.UpdatesFilter{Site: c.String("site"), Security: c.Bool("security")}
				if c.Bool("csv") {
					b, err := cl.UpdatesCSV(c.Context, f)
					if err != nil {
						return apiErr("updates list", err)
					}
					_, err = a.stdout.Write(b)
					return err
				}
				rep, err := cl.Updates(c.Context, f)
				if err != nil {
					return apiErr("updates list", err)
				}
				if c.Bool("json") {
					return a.printJSON(rep)
				}
				return printUpdates(a.stdout, rep, c.Bool("nodes"))
			},
		}},
	}
}

func printUpdates(out io.Writer, rep *coordinator.UpdatesReport, names bool) error {
	w := newTable(out)
	fmt.Fprintln(w, "PACKAGE\tINSTALLED → CANDIDATE\tSECURITY\tMISSING\tBY SITE")
	for _, u := range rep.Updates {
		var sites []string
		for _, s := range u.Sites {
			sites = append(sites, fmt.Sprintf("%s:%d", s.Site, s.Missing))
		}
		pkg := u.Package
		if u.Arch != "" && u.Arch != "all" {
			pkg += ":" + u.Arch
		}
		sec := "no"
		if u.Security {
			sec = "yes"
		}
		fmt.Fprintf(w, "%s\t%s → %s\t%s\t%d\t%s\n", pkg, strings.Join(u.Installed, ","), u.Candidate, sec, u.Missing, strings.Join(sites, " "))
		if names {
			for _, n := range u.Nodes {
				fmt.Fprintf(w, "  %s/%s\t%s\t\t\t\n", n.Site, n.Name, n.Installed)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(rep.Updates) == 0 {
		fmt.Fprintln(out, "no missing updates in the last scans")
	}
	fmt.Fprintln(out, complianceLine("fleet", rep.Fleet))
	return nil
}

// complianceLine summarises a compliance count in one line.
func complianceLine(what string, c coordinator.Compliance) string {
	s := fmt.Sprintf("%s: %d%% compliant (%d of %d nodes), %d%% without missing security updates; %d scanned",
		what, c.Percent, c.Compliant, c.Nodes, c.SecurityPercent, c.Scanned)
	if c.ScanFailed > 0 {
		s += fmt.Sprintf(", %d scans failed", c.ScanFailed)
	}
	if n := c.Nodes - c.Scanned - c.ScanFailed; n > 0 {
		s += fmt.Sprintf(", %d never scanned (relaymesh scan --all)", n)
	}
	if c.RebootRequired > 0 {
		s += fmt.Sprintf(", %d need a reboot", c.RebootRequired)
	}
	return s
}

// sumCompliance adds up the sites' counts into the fleet's.
func sumCompliance(ss []coordinator.SiteView) coordinator.Compliance {
	var f coordinator.Compliance
	for _, s := range ss {
		c := s.Compliance
		f.Nodes += c.Nodes
		f.Scanned += c.Scanned
		f.ScanFailed += c.ScanFailed
		f.Compliant += c.Compliant
		f.SecurityCompliant += c.SecurityCompliant
		f.RebootRequired += c.RebootRequired
		f.MissingUpdates += c.MissingUpdates
		f.MissingSecurity += c.MissingSecurity
	}
	if f.Nodes > 0 {
		f.Percent, f.SecurityPercent = f.Compliant*100/f.Nodes, f.SecurityCompliant*100/f.Nodes
	}
	return f
}

// printNodeUpdates prints a node's last scan.
func printNodeUpdates(out io.Writer, n *coordinator.NodeUpdates) error {
	if n.Scan == nil {
		fmt.Fprintf(out, "node %s has not reported a scan yet: relaymesh scan --node %s\n", n.Name, n.Name)
		return nil
	}
	r := n.Scan.Report
	w := newTable(out)
	fmt.Fprintf(w, "Scanned\t%s (received %s)\n", r.Time.Local().Format(time.RFC3339), n.Scan.Received.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "OS\t%s\nKernel\t%s\nPackages\t%d installed\n", orStr(r.OS.PrettyName, r.OS.ID+" "+r.OS.VersionID), r.Kernel, r.InstalledCount)
	if !r.ListsTime.IsZero() {
		fmt.Fprintf(w, "Repository data\t%s\n", r.ListsTime.Local().Format(time.RFC3339))
	}
	if r.RebootRequired {
		fmt.Fprintf(w, "Reboot required\tyes %s\n", strings.Join(r.RebootPackages, " "))
	}
	for _, b := range r.Broken {
		fmt.Fprintf(w, "Broken\t%s %s (%s): dpkg --configure -a\n", b.Name, b.Version, b.Status)
	}
	if r.Error != "" {
		fmt.Fprintf(w, "Scan error\t%s\n", r.Error)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if r.Error == "" && len(r.Updates) == 0 {
		fmt.Fprintln(out, "no missing updates")
		return nil
	}
	w = newTable(out)
	fmt.Fprintln(w, "PACKAGE\tINSTALLED\tCANDIDATE\tSECURITY\tFROM")
	for _, u := range r.Updates {
		sec := "no"
		if u.Security {
			sec = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Installed, u.Candidate, sec, strings.Join(u.Suites, ","))
	}
	return w.Flush()
}
