package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/coordinator"
)

func (a *app) rotateKeyCommand() *cli.Command {
	return &cli.Command{
		Name: "rotate-key", Usage: "rotate a site's gossip key: add a new random key, use it, remove the old one, each step once every live node of the site holds it",
		ArgsUsage: "SITE", Flags: adminFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("sites rotate-key: give one SITE (relaymesh sites list)")
			}
			cl, err := a.client(c)
			if err != nil {
				return err
			}
			r, err := cl.RotateSiteKey(c.Context, c.Args().First())
			if err != nil {
				return apiErr("sites rotate-key", err)
			}
			if c.Bool("json") {
				return a.printJSON(r)
			}
			fmt.Fprintf(a.stdout, "site %s: gossip key rotation started, new key %s (order %s); follow it with relaymesh sites list\n",
				r.Site, r.New[:16], r.Order)
			return nil
		},
	}
}

// rotationCell is a site's gossip key state for a table cell.
func rotationCell(r *coordinator.KeyRotationView) string {
	switch {
	case r == nil:
		return "-"
	case r.Phase == coordinator.RotationDone:
		return "rotated " + r.Finished.Format("2006-01-02 15:04")
	case len(r.Waiting) > 0:
		return fmt.Sprintf("%s, waiting for %s", r.Phase, strings.Join(r.Waiting, ","))
	}
	return r.Phase
}
