package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/relaymesh/relaymesh/coordinator"
)

// adminFlags locate the coordinator's admin API: flags or RELAYMESH_*
// variables first, then a coordinator directory (which a running
// coordinator fills with admin.addr and admin.token), then the CLI config
// file ($RELAYMESH_CONFIG or ~/.config/relaymesh/cli.yaml).
func adminFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "coordinator-url", Usage: "admin API URL, e.g. http://127.0.0.1:7480"},
		&cli.StringFlag{Name: "admin-token", Usage: "admin bearer token (prefer --token-file)"},
		&cli.StringFlag{Name: "token-file", Usage: "file holding the admin token (mode 0600)"},
		&cli.StringFlag{Name: "coordinator-dir", Usage: "a local coordinator's directory: URL and token are read from it"},
		&cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) of the admin API's TLS certificate"},
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"},
	}
}

// cliConfig is the optional CLI config file.
type cliConfig struct {
	CoordinatorURL string `yaml:"coordinator_url"`
	TokenFile      string `yaml:"token_file"`
	CA             string `yaml:"ca"`
}

func (a *app) client(c *cli.Context) (*coordinator.Client, error) {
	url, token, ca := c.String("coordinator-url"), c.String("admin-token"), c.String("ca")
	if f := c.String("token-file"); token == "" && f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, usageErrorf("--token-file %q: %v", f, err)
		}
		token = strings.TrimSpace(string(b))
	}
	if dir := c.String("coordinator-dir"); dir != "" && (url == "" || token == "") {
		u, t, err := coordinator.AdminFromDir(dir)
		if err != nil {
			return nil, usageErrorf("--coordinator-dir %q: %v", dir, err)
		}
		url, token = orStr(url, u), orStr(token, t)
	}
	if url == "" || token == "" {
		path := os.Getenv("RELAYMESH_CONFIG")
		if path == "" {
			if home, err := os.UserHomeDir(); err == nil {
				path = filepath.Join(home, ".config", "relaymesh", "cli.yaml")
			}
		}
		if b, err := os.ReadFile(path); err == nil {
			var cc cliConfig
			if err := yaml.Unmarshal(b, &cc); err != nil {
				return nil, usageErrorf("config %s: %v", path, err)
			}
			url, ca = orStr(url, cc.CoordinatorURL), orStr(ca, cc.CA)
			if token == "" && cc.TokenFile != "" {
				b, err := os.ReadFile(cc.TokenFile)
				if err != nil {
					return nil, usageErrorf("config %s: token_file: %v", path, err)
				}
				token = strings.TrimSpace(string(b))
			}
		}
	}
	if url == "" {
		url = "http://127.0.0.1:7480"
	}
	if token == "" {
		return nil, usageErrorf("no admin token: give --coordinator-dir DIR, --token-file FILE or RELAYMESH_ADMIN_TOKEN")
	}
	cl, err := coordinator.NewClient(url, token, ca)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return cl, nil
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// apiErr turns a client error into the CLI's exit codes: what the user
// named wrongly is a usage error.
func apiErr(what string, err error) error {
	if errors.Is(err, coordinator.ErrNotFound) || errors.Is(err, coordinator.ErrBadRequest) ||
		errors.Is(err, coordinator.ErrConflict) || errors.Is(err, coordinator.ErrUnauthorized) {
		return usageErrorf("%s: %v", what, err)
	}
	return cli.Exit(fmt.Errorf("%s: %w", what, err), exitFailure)
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) table() *tabwriter.Writer { return tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0) }

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

func (a *app) tokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "join tokens for enrolling nodes",
		Subcommands: []*cli.Command{{
			Name:      "create",
			Usage:     "create a join token for a site and print it",
			UsageText: "relaymesh token create --site NAME [--tags a,b] [--uses N | --unlimited] [--expires 24h]",
			Flags: append(adminFlags(),
				&cli.StringFlag{Name: "site", Usage: "site the enrolled nodes belong to"},
				&cli.StringFlag{Name: "tags", Usage: "comma-separated tags given to the nodes"},
				&cli.IntFlag{Name: "uses", Value: coordinator.DefaultTokenUses, Usage: "how many nodes may enroll with it (one-time by default)"},
				&cli.BoolFlag{Name: "unlimited", Usage: "any number of nodes may enroll with it until it expires"},
				&cli.StringFlag{Name: "expires", Value: "24h", Usage: "validity, e.g. 24h"},
			),
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				if c.String("site") == "" {
					return usageErrorf("token create: --site is empty: name the site, e.g. --site paris")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				var tags []string
				for _, t := range strings.Split(c.String("tags"), ",") {
					if t = strings.TrimSpace(t); t != "" {
						tags = append(tags, t)
					}
				}
				req := coordinator.TokenRequest{Site: c.String("site"), Tags: tags, Uses: c.Int("uses"), Expires: c.String("expires")}
				switch {
				case c.Bool("unlimited") && c.IsSet("uses"):
					return usageErrorf("token create: --uses and --unlimited: choose one")
				case c.Bool("unlimited"):
					req.Uses, req.Unlimited = 0, true
				case req.Uses < 1:
					return usageErrorf("token create: --uses %d: want at least 1 (or --unlimited)", req.Uses)
				}
				res, err := cl.CreateToken(c.Context, req)
				if err != nil {
					return apiErr("token create", err)
				}
				if c.Bool("json") {
					return a.printJSON(res)
				}
				fmt.Fprintln(a.stdout, res.Token)
				return nil
			},
		}},
	}
}

func (a *app) nodesCommand() *cli.Command {
	return &cli.Command{
		Name:  "nodes",
		Usage: "enrolled nodes",
		Subcommands: append([]*cli.Command{
			{
				Name: "list", Usage: "list enrolled nodes", Flags: adminFlags(),
				Action: func(c *cli.Context) error {
					cl, err := a.client(c)
					if err != nil {
						return err
					}
					ns, err := cl.Nodes(c.Context)
					if err != nil {
						return apiErr("nodes list", err)
					}
					if c.Bool("json") {
						return a.printJSON(ns)
					}
					w := a.table()
					fmt.Fprintln(w, "SITE\tNAME\tALIVE\tRELAY\tOS/ARCH\tVERSION\tLAST SEEN\tID")
					for _, n := range ns {
						fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s/%s\t%s\t%s\t%s\n", n.Site, n.Name, n.Alive, n.Relay, n.OS, n.Arch, n.Version, ago(n.LastSeen), n.ID)
					}
					if err := w.Flush(); err != nil {
						return err
					}
					versions := make([]string, len(ns))
					for i, n := range ns {
						versions[i] = n.Version
					}
					if vs := coordinator.CountVersions(versions); len(vs) > 1 {
						fmt.Fprintf(a.stdout, "warning: the fleet runs %d versions: %s\n", len(vs), coordinator.FormatVersions(vs))
					}
					return nil
				},
			},
			{
				Name: "show", Usage: "show one node", ArgsUsage: "ID|NAME",
				Flags: append(adminFlags(), &cli.BoolFlag{Name: "updates", Usage: "show its last scan: OS, kernel, reboot, missing updates"}),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrorf("nodes show: give one node ID or name")
					}
					cl, err := a.client(c)
					if err != nil {
						return err
					}
					if c.Bool("updates") {
						nu, err := cl.NodeUpdates(c.Context, c.Args().First())
						if err != nil {
							return apiErr("nodes show", err)
						}
						if c.Bool("json") {
							return a.printJSON(nu)
						}
						fmt.Fprintf(a.stdout, "Node %s (%s), site %s\n", nu.Name, nu.ID, nu.Site)
						return printNodeUpdates(a.stdout, nu)
					}
					n, err := cl.Node(c.Context, c.Args().First())
					if err != nil {
						return apiErr("nodes show", err)
					}
					if c.Bool("json") {
						return a.printJSON(n)
					}
					w := a.table()
					fmt.Fprintf(w, "ID\t%s\nName\t%s\nSite\t%s\nTags\t%s\nAlive\t%v\nRelay\t%v\nOS/arch\t%s/%s\nVersion\t%s\nAddresses\t%s\nGossip\t%s\nFirst seen\t%s\nLast seen\t%s\n",
						n.ID, n.Name, n.Site, strings.Join(n.Tags, ","), n.Alive, n.Relay, n.OS, n.Arch, n.Version,
						strings.Join(n.Addrs, " "), n.GossipAddr, n.FirstSeen.Format(time.RFC3339), ago(n.LastSeen))
					if n.ClockKnown {
						fmt.Fprintf(w, "Clock offset\t%+v (±%v)\n", n.ClockOffset.Round(time.Millisecond), n.ClockBound.Round(time.Millisecond))
					}
					if n.ClockWarning != "" {
						fmt.Fprintf(w, "Warning\t%s\n", n.ClockWarning)
					}
					if len(n.UnreachableBy) > 0 {
						fmt.Fprintf(w, "Warning\t%d site peers cannot connect to it at %s (%s): check its listen/advertise settings and firewall\n",
							len(n.UnreachableBy), strings.Join(n.Addrs, " "), strings.Join(n.UnreachableBy, ", "))
					}
					return w.Flush()
				},
			},
		}, a.nodesLifecycleCommands()...),
	}
}

func (a *app) sitesCommand() *cli.Command {
	return &cli.Command{
		Name:  "sites",
		Usage: "sites and their relays",
		Subcommands: []*cli.Command{{
			Name: "list", Usage: "list sites: members, alive, current relays", Flags: adminFlags(),
			Action: func(c *cli.Context) error {
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				ss, err := cl.Sites(c.Context)
				if err != nil {
					return apiErr("sites list", err)
				}
				if c.Bool("json") {
					return a.printJSON(ss)
				}
				w := a.table()
				fmt.Fprintln(w, "SITE\tMEMBERS\tALIVE\tWAN IN\tLAN IN\tVERSIONS\tCOMPLIANT\tSECURITY\tSCANNED\tGOSSIP KEY\tRELAYS")
				for _, s := range ss {
					fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%d%%\t%d%%\t%d/%d\t%s\t%s\n", s.Site, s.Members, s.Alive, humanBytes(s.WANIn), humanBytes(s.LANIn),
						siteVersions(s.Versions), s.Compliance.Percent, s.Compliance.SecurityPercent, s.Compliance.Scanned, s.Compliance.Nodes,
						rotationCell(s.KeyRotation), strings.Join(s.Relays, ", "))
				}
				if err := w.Flush(); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, complianceLine("fleet", sumCompliance(ss)))
				for _, s := range ss {
					if len(s.Unreachable) > 0 {
						fmt.Fprintf(a.stdout, "warning: site %s: peers cannot connect to %s at their advertised addresses (relaymesh nodes show NAME)\n",
							s.Site, strings.Join(s.Unreachable, ", "))
					}
				}
				return nil
			},
		}, a.rotateKeyCommand()},
	}
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0) }

// siteVersions is a site's versions for a table cell: "v1.2" when all its
// members run it, "v1.2 (3), v1.1 (1)" when mixed.
func siteVersions(vs []coordinator.VersionCount) string {
	if len(vs) == 1 {
		return vs[0].Version
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%s (%d)", v.Version, v.Nodes)
	}
	return strings.Join(parts, ", ")
}
