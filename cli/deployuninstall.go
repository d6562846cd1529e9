package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/coordinator"
)

// deployUninstallCommand is deploy uninstall: a signed order that runs the
// packages' uninstall commands on the targets.
func (a *app) deployUninstallCommand() *cli.Command {
	return &cli.Command{
		Name:  "uninstall",
		Usage: "sign an order that runs PACKAGE...'s uninstall commands on the targets",
		UsageText: "relaymesh deploy uninstall PACKAGE... --node ID|NAME --site S --tag T --os OS --all [--not-before T] " +
			"[--window 'Sat 02:00-04:00'] [--expires 24h] [--priority N] [--bulk] [--reboot never|if-needed|always] [--timeout 10m] [--dry-run]",
		Description: "Each target fetches the package (a launch package's uninstall runs in its extracted archive, as its install did), " +
			"runs the uninstall command given to 'package build --uninstall' (a .deb: the node's deb_remove NAME) and reports " +
			"SUCCESS, or the error with the exit code; afterwards the package counts as not installed there. A package built " +
			"without an uninstall command is refused. Follow it with 'relaymesh deploy show ID' like any deployment.",
		Flags: append(adminFlags(),
			&cli.StringSliceFlag{Name: "node", Usage: "target node ID or name (repeatable)"},
			&cli.StringSliceFlag{Name: "site", Usage: "target every node of a site (repeatable)"},
			&cli.StringSliceFlag{Name: "tag", Usage: "target every node with a tag (repeatable)"},
			&cli.StringFlag{Name: "os", Usage: "only nodes of this OS (linux, windows, ...)"},
			&cli.BoolFlag{Name: "all", Usage: "target every enrolled node"},
			&cli.StringFlag{Name: "not-before", Usage: "do not uninstall before this time (RFC 3339)"},
			&cli.StringFlag{Name: "window", Usage: "maintenance window in the node's local time, e.g. 'Sat 02:00-04:00'"},
			&cli.StringFlag{Name: "expires", Usage: "the order expires this long after not-before (default 24h)"},
			&cli.IntFlag{Name: "priority", Value: -1, Usage: "0 (first) to 10; default: the packages' own"},
			&cli.BoolFlag{Name: "bulk", Usage: "stop at the first failure (nothing is reinstalled; default: one-by-one)"},
			&cli.StringFlag{Name: "reboot", Value: "never", Usage: "never, if-needed or always"},
			&cli.StringFlag{Name: "timeout", Usage: "time budget for the whole order, e.g. 10m"},
			&cli.BoolFlag{Name: "dry-run", Usage: "resolve the targets and check the order, print them, sign nothing"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageErrorf("deploy uninstall: give at least one package ID (see 'relaymesh package list')")
			}
			return a.submitDeployment(c, "deploy uninstall", coordinator.DeployRequest{
				Packages: c.Args().Slice(), Uninstall: true, Nodes: c.StringSlice("node"), Sites: c.StringSlice("site"),
				Tags: c.StringSlice("tag"), OS: c.String("os"), All: c.Bool("all"),
				NotBefore: c.String("not-before"), Window: c.String("window"), Expires: c.String("expires"),
				Bulk: c.Bool("bulk"), Reboot: c.String("reboot"), Timeout: c.String("timeout"), DryRun: c.Bool("dry-run"),
			})
		},
	}
}
