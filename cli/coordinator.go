package cli

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/console"
	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/internal/units"
)

func (a *app) coordinatorCommand() *cli.Command {
	dirFlag := &cli.StringFlag{Name: "dir", Usage: "the coordinator's directory (keys, state, config.yaml)", Value: "./relaymesh-coordinator"}
	return &cli.Command{
		Name:  "coordinator",
		Usage: "the admin's server: enrollment, packages, deployments, status",
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create the coordinator's identity, order key, admin token, gossip keyring and config",
				UsageText: "relaymesh coordinator init --dir DIR [--json]",
				Flags:     []cli.Flag{dirFlag, &cli.BoolFlag{Name: "json", Usage: "print dir, peer_id, order_key_id and admin_token_file as JSON"}},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					res, err := coordinator.Init(c.String("dir"))
					if err != nil {
						return usageErrorf("coordinator init: %v", err)
					}
					if c.Bool("json") {
						return a.printJSON(struct {
							Dir            string `json:"dir"`
							PeerID         string `json:"peer_id"`
							OrderKeyID     string `json:"order_key_id"`
							AdminTokenFile string `json:"admin_token_file"`
						}{res.Dir, res.PeerID, res.OrderKey, filepath.Join(res.Dir, coordinator.FileAdminToken)})
					}
					fmt.Fprintf(a.stdout, "coordinator initialised in %s\npeer ID:       %s\norder key ID:  %s\nadmin token:   %s/%s (mode 0600)\nnext: relaymesh coordinator serve --dir %s\n",
						res.Dir, res.PeerID, res.OrderKey, res.Dir, coordinator.FileAdminToken, res.Dir)
					return nil
				},
			},
			{
				Name:      "serve",
				Usage:     "run the coordinator until SIGINT/SIGTERM",
				UsageText: "relaymesh coordinator serve --dir DIR [--listen MULTIADDR]... [--admin-addr HOST:PORT] [--max-upload 100Mbit]",
				Flags: []cli.Flag{
					dirFlag,
					&cli.StringSliceFlag{Name: "listen", Usage: "libp2p listen multiaddr (repeatable); default from config.yaml"},
					&cli.StringFlag{Name: "admin-addr", Usage: "admin API host:port; default 127.0.0.1:7480 (loopback)"},
					&cli.StringFlag{Name: "tls-cert", Usage: "serve the admin API over TLS with this certificate"},
					&cli.StringFlag{Name: "tls-key", Usage: "private key of --tls-cert"},
					&cli.StringFlag{Name: "max-upload", Usage: "cap on fragment upload to the mesh: 100Mbit/s, 12.5MB/s or unlimited"},
					&cli.DurationFlag{Name: "no-feedback", Usage: "mark a silent working node ERR_TIMEOUT after this long (default 600s)"},
				},
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					cfg, err := coordinator.LoadConfig(c.String("dir"))
					if err != nil {
						return usageErrorf("coordinator serve: %v", err)
					}
					if v := c.StringSlice("listen"); len(v) > 0 {
						cfg.Listen = v
					}
					if v := c.String("admin-addr"); v != "" {
						cfg.AdminAddr = v
					}
					if v := c.String("tls-cert"); v != "" {
						cfg.TLSCert = v
					}
					if v := c.String("tls-key"); v != "" {
						cfg.TLSKey = v
					}
					if v := c.String("max-upload"); v != "" {
						bps, err := units.ParseRateCap(v)
						if err != nil {
							return usageErrorf("coordinator serve: --max-upload: %w", err)
						}
						cfg.MaxUploadBps = bps
					}
					if v := c.Duration("no-feedback"); v > 0 {
						cfg.NoFeedback = v
					}
					cfg.Logger = a.log
					cfg.Console = console.Handler
					if err := cfg.Validate(); err != nil {
						return usageErrorf("coordinator serve: %v", err)
					}
					return coordinator.Run(c.Context, cfg)
				},
			},
			a.snapshotCommand(dirFlag),
		},
	}
}
