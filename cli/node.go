package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/node"
)

func (a *app) nodeCommand() *cli.Command {
	dirFlag := &cli.StringFlag{Name: "dir", Usage: "the node's directory (identity, enrollment, cache, config.yaml)", Value: "./relaymesh-node"}
	return &cli.Command{
		Name:  "node",
		Usage: "the daemon on every endpoint",
		Subcommands: []*cli.Command{
			{
				Name:      "enroll",
				Usage:     "enroll this node with a join token",
				UsageText: "relaymesh node enroll --coordinator MULTIADDR --token T --dir DIR [--name NAME] [--listen MULTIADDR]... [--advertise MULTIADDR]... [--retry-for DURATION] [--json]",
				Flags: append([]cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "coordinator", Usage: "the coordinator's multiaddr ending in /p2p/<peer ID> (its DIR/p2p.addrs)"},
					&cli.StringFlag{Name: "token", Usage: "join token from 'relaymesh token create'"},
					&cli.StringFlag{Name: "name", Usage: "node name (default: the hostname)"},
					&cli.BoolFlag{Name: "json", Usage: "print name, node_id, site and dir as JSON"},
					&cli.DurationFlag{Name: "retry-for", Value: node.DefaultEnrollRetryFor,
						Usage: "keep trying a coordinator that cannot be reached this long (1s doubling to 60s between tries, jittered; negative: try once); a refused token is not retried"},
				}, nodeNetFlags()...),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					if c.String("coordinator") == "" {
						return usageErrorf("node enroll: --coordinator is empty: give the coordinator's multiaddr, e.g. /ip4/10.0.0.1/tcp/7471/p2p/12D3Koo...")
					}
					set := nodeSettings(c)
					// A bad setting is refused before the token is spent.
					if err := set.Check(c.String("dir")); err != nil {
						return usageErrorf("node enroll: %v", err)
					}
					e, err := node.Enroll(c.Context, node.EnrollOptions{
						Dir: c.String("dir"), Coordinator: c.String("coordinator"), Token: c.String("token"),
						Name: c.String("name"), Listen: set.Listen, Advertise: set.Advertise, Logger: a.log,
						RetryFor: c.Duration("retry-for"),
					})
					if err != nil {
						return usageErrorf("node enroll: %v", err)
					}
					if err := node.SaveSettings(c.String("dir"), set); err != nil {
						return usageErrorf("node enroll: enrolled, but the settings were not saved: %v (give them to node run)", err)
					}
					if c.Bool("json") {
						return a.printJSON(struct {
							Name   string `json:"name"`
							NodeID string `json:"node_id"`
							Site   string `json:"site"`
							Dir    string `json:"dir"`
						}{e.Name, e.NodeID, e.Site, c.String("dir")})
					}
					fmt.Fprintf(a.stdout, "enrolled %s as %s in site %s\nnext: relaymesh node run --dir %s\n", e.Name, e.NodeID, e.Site, c.String("dir"))
					return nil
				},
			},
			{
				Name:      "run",
				Usage:     "run the node daemon until SIGINT/SIGTERM",
				UsageText: "relaymesh node run --dir DIR [--listen MULTIADDR]... [--advertise MULTIADDR]...",
				Flags:     append([]cli.Flag{dirFlag}, nodeNetFlags()...),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					if set := nodeSettings(c); !set.Empty() {
						if _, err := node.LoadEnrollment(c.String("dir")); err != nil {
							return usageErrorf("node run: %v", err)
						}
						if err := node.SaveSettings(c.String("dir"), set); err != nil {
							return usageErrorf("node run: %v", err)
						}
					}
					cfg, err := node.LoadConfig(c.String("dir"))
					if err != nil {
						return usageErrorf("node run: %v", err)
					}
					cfg.Logger = a.log
					return node.Run(c.Context, cfg)
				},
			},
		},
	}
}
