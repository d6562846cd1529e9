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
				UsageText: "relaymesh node enroll --coordinator MULTIADDR --token T --dir DIR [--name NAME] [--listen MULTIADDR]...",
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringFlag{Name: "coordinator", Usage: "the coordinator's multiaddr ending in /p2p/<peer ID> (its DIR/p2p.addrs)"},
					&cli.StringFlag{Name: "token", Usage: "join token from 'relaymesh token create'"},
					&cli.StringFlag{Name: "name", Usage: "node name (default: the hostname)"},
					&cli.StringSliceFlag{Name: "listen", Usage: "libp2p listen multiaddr the node will use (repeatable)"},
				},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					if c.String("coordinator") == "" {
						return usageErrorf("node enroll: --coordinator is empty: give the coordinator's multiaddr, e.g. /ip4/10.0.0.1/tcp/7471/p2p/12D3Koo...")
					}
					e, err := node.Enroll(c.Context, node.EnrollOptions{
						Dir: c.String("dir"), Coordinator: c.String("coordinator"), Token: c.String("token"),
						Name: c.String("name"), Listen: c.StringSlice("listen"), Logger: a.log,
					})
					if err != nil {
						return usageErrorf("node enroll: %v", err)
					}
					fmt.Fprintf(a.stdout, "enrolled %s as %s in site %s\nnext: relaymesh node run --dir %s\n", e.Name, e.NodeID, e.Site, c.String("dir"))
					return nil
				},
			},
			{
				Name:      "run",
				Usage:     "run the node daemon until SIGINT/SIGTERM",
				UsageText: "relaymesh node run --dir DIR",
				Flags:     []cli.Flag{dirFlag},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
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
