package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/node"
)

// nodeNetFlags are the network settings of node enroll and node run; what
// is given is written into DIR/config.yaml, so the next run keeps it.
func nodeNetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "listen", Usage: "libp2p listen multiaddr (repeatable; default " + node.DefaultListen + ")"},
		&cli.StringSliceFlag{Name: "advertise", Usage: "multiaddr site peers dial to reach this node (repeatable; default: the listen address on the route to the coordinator)"},
		&cli.StringFlag{Name: "gossip-bind", Usage: "IP the site's gossip pool binds (default " + node.DefaultGossipBind + ")"},
		&cli.IntFlag{Name: "gossip-port", Usage: "gossip port, UDP and TCP (default 4712)"},
		&cli.StringFlag{Name: "gossip-advertise", Usage: "IP other members use for this node's gossip port (default: the advertised IP)"},
	}
}

// nodeSettings collects the network flags given on the command line.
func nodeSettings(c *cli.Context) node.Settings {
	return node.Settings{
		Listen: c.StringSlice("listen"), Advertise: c.StringSlice("advertise"),
		GossipBind: c.String("gossip-bind"), GossipPort: c.Int("gossip-port"), GossipAdvertise: c.String("gossip-advertise"),
	}
}
