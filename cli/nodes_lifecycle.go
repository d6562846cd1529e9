package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// aliveWithin: a node seen this recently is probably still running
// (the coordinator's default online window).
const aliveWithin = 3 * time.Minute

// nodesLifecycleCommands are `nodes delete`, `nodes revoke` and
// `nodes revoked`.
func (a *app) nodesLifecycleCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name: "delete", Usage: "remove a node that is gone for good (it may enroll again with a new token)", ArgsUsage: "NAME|ID",
			Flags: append(adminFlags(), &cli.BoolFlag{Name: "force",
				Usage: "delete it even with unfinished rows in running deployments, which are marked ERR_ABORTED"}),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("nodes delete: give one node name or ID (relaymesh nodes list)")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				res, err := cl.DeleteNode(c.Context, c.Args().First(), c.Bool("force"))
				if err != nil {
					return apiErr("nodes delete", err)
				}
				if c.Bool("json") {
					return a.printJSON(res)
				}
				fmt.Fprintf(a.stdout, "deleted node %s (%s), site %s", res.Node.Name, res.Node.ID, res.Node.Site)
				if res.Aborted > 0 {
					fmt.Fprintf(a.stdout, "; %d unfinished rows marked ERR_ABORTED", res.Aborted)
				}
				fmt.Fprintln(a.stdout)
				if seen := time.Since(res.Node.LastSeen); seen < aliveWithin {
					fmt.Fprintf(a.stderr, "warning: %s was seen %s ago: a node still running can enroll again with a join token; 'relaymesh nodes revoke' keeps its key out for good\n",
						res.Node.Name, seen.Round(time.Second))
				}
				return nil
			},
		},
		{
			Name: "revoke", Usage: "refuse a node's key and peer ID for good: sync, reports, fragments, enrollment, and its site peers", ArgsUsage: "NAME|ID",
			Flags: adminFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("nodes revoke: give one node name or ID (relaymesh nodes list)")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				r, err := cl.RevokeNode(c.Context, c.Args().First())
				if err != nil {
					return apiErr("nodes revoke", err)
				}
				if c.Bool("json") {
					return a.printJSON(r)
				}
				fmt.Fprintf(a.stdout, "revoked node %s (%s), site %s: its key is refused from now on", r.Name, r.ID, r.Site)
				if r.Aborted > 0 {
					fmt.Fprintf(a.stdout, "; %d unfinished rows marked ERR_ABORTED", r.Aborted)
				}
				fmt.Fprintln(a.stdout, "\nsite peers refuse it once they have the new member list (their next sync)")
				return nil
			},
		},
		{
			Name: "logs", Usage: "a node's recent log lines (info and above, the newest 4096 it keeps in memory), asked over the mesh", ArgsUsage: "NAME|ID",
			Flags: append(adminFlags(),
				&cli.StringFlag{Name: "since", Usage: "only lines newer than this: a duration (10m) or an RFC 3339 time"},
				&cli.StringFlag{Name: "level", Usage: "lowest level shown: info, warn or error"}),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("nodes logs: give one node name or ID (relaymesh nodes list)")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				nl, err := cl.NodeLogs(c.Context, c.Args().First(), c.String("since"), c.String("level"))
				if err != nil {
					return apiErr("nodes logs", err)
				}
				if c.Bool("json") {
					return a.printJSON(nl)
				}
				if nl.Incomplete {
					fmt.Fprintf(a.stderr, "note: %s keeps its newest lines only; %d older ones are in its journal (journalctl -u relaymesh-node)\n", nl.Name, nl.Dropped)
				}
				for _, r := range nl.Records {
					fmt.Fprintf(a.stdout, "%s %-5s %s", r.Time.Format(time.RFC3339), r.Level, r.Msg)
					for _, at := range r.Attrs {
						fmt.Fprintf(a.stdout, " %s=%s", at.Key, quoteIfNeeded(at.Value))
					}
					fmt.Fprintln(a.stdout)
				}
				return nil
			},
		},
		{
			Name: "revoked", Usage: "list revoked nodes", Flags: adminFlags(),
			Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				rs, err := cl.Revoked(c.Context)
				if err != nil {
					return apiErr("nodes revoked", err)
				}
				if c.Bool("json") {
					return a.printJSON(rs)
				}
				w := a.table()
				fmt.Fprintln(w, "SITE\tNAME\tREVOKED\tID")
				for _, r := range rs {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Site, r.Name, r.Revoked.Format(time.RFC3339), r.ID)
				}
				return w.Flush()
			},
		},
	}
}

// quoteIfNeeded quotes a value holding spaces, quotes or '=' as slog's
// text handler would.
func quoteIfNeeded(v string) string {
	if v == "" || strings.ContainsAny(v, " \t\n\"=") {
		return strconv.Quote(v)
	}
	return v
}
