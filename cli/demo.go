package cli

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/demo"
	"github.com/relaymesh/relaymesh/internal/units"
)

func (a *app) demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "run a coordinator and 3 sites × 4 nodes on this machine and deploy a sample package",
		Description: "Starts every daemon as its own process on loopback, builds and deploys a sample package, " +
			"shows the status filling up, prints the bytes that crossed each site's WAN link, and stops everything.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes-per-site", Value: 4, Usage: "nodes in each site"},
			&cli.StringSliceFlag{Name: "sites", Usage: "site names (default paris, lyon, nantes)"},
			&cli.StringFlag{Name: "package-size", Value: "8MiB", Usage: "payload size of the sample package"},
			&cli.StringFlag{Name: "dir", Usage: "keep the fleet's files here (default: a temp dir, removed)"},
		},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			cfg := demo.DefaultConfig(bin, a.stdout)
			cfg.NodesPerSite = c.Int("nodes-per-site")
			if s := c.StringSlice("sites"); len(s) > 0 {
				cfg.Sites = s
			}
			size, err := units.ParseSize(c.String("package-size"))
			if err != nil {
				return usageErrorf("demo: --package-size: %w", err)
			}
			cfg.PackageSize = size
			cfg.Dir = c.String("dir")
			cfg.Live = a.isTerminal(a.stdout)
			cfg.Logger = a.log
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%v", err)
			}
			return demo.Run(c.Context, cfg)
		},
	}
}
