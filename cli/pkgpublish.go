package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// publishCommands are the package subcommands that talk to the coordinator.
func (a *app) publishCommands() []*cli.Command {
	return []*cli.Command{
		{
			Name:      "publish",
			Usage:     "upload a locally built package (fragments the coordinator lacks, then the manifest)",
			UsageText: "relaymesh package publish [--store DIR] MANIFEST_FILE",
			Description: "Resumable: the coordinator is asked which fragments it lacks and only those are sent, " +
				"so running publish again after an interruption sends the rest.",
			Flags: append(adminFlags(),
				&cli.StringFlag{Name: "store", Value: defaultStoreDir, Usage: "fragment store the package was built into"},
			),
			Action: func(c *cli.Context) error {
				path, err := oneArg(c, "MANIFEST_FILE", false)
				if err != nil {
					return err
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return usageErrorf("package publish: %v", err)
				}
				rec, err := a.publish(c, b, c.String("store"))
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, rec.ID)
				return nil
			},
		},
		{
			Name: "list", Usage: "list the coordinator's packages", Flags: adminFlags(),
			Action: func(c *cli.Context) error {
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				ps, err := cl.Packages(c.Context)
				if err != nil {
					return apiErr("package list", err)
				}
				if c.Bool("json") {
					return a.printJSON(ps)
				}
				w := a.table()
				fmt.Fprintln(w, "NAME\tVERSION\tOS/ARCH\tACTION\tPRIO\tSIZE\tCREATED\tID")
				for _, p := range ps {
					m := p.Manifest
					fmt.Fprintf(w, "%s\t%s\t%s/%s\t%s\t%d\t%s\t%s\t%s\n", m.Name, m.Version, m.OS, m.Arch, m.Action, m.Priority, humanBytes(m.Size), p.Created.Local().Format("2006-01-02 15:04"), p.ID)
				}
				return w.Flush()
			},
		},
		{
			Name: "show", Usage: "show one of the coordinator's packages", ArgsUsage: "ID", Flags: adminFlags(),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("package show: give one package ID")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				p, err := cl.Package(c.Context, c.Args().First())
				if err != nil {
					return apiErr("package show", err)
				}
				if c.Bool("json") {
					return a.printJSON(p)
				}
				m := p.Manifest
				w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(w, "ID\t%s\nName\t%s\nVersion\t%s\nOS/arch\t%s/%s\nAction\t%s\nCommand\t%s\nPriority\t%d\nSize\t%s (%d fragments of %s)\nDigest\t%s\nCreated\t%s\n",
					p.ID, m.Name, m.Version, m.OS, m.Arch, m.Action, strings.Join(m.Command, " "), m.Priority,
					humanBytes(m.Size), len(m.Fragments), humanBytes(int64(m.FragmentSize)), m.Digest, p.Created.Format(time.RFC3339))
				return w.Flush()
			},
		},
		{
			Name: "delete", Usage: "delete a package (refused while an active deployment uses it, unless --force)", ArgsUsage: "ID",
			Flags: append(adminFlags(), &cli.BoolFlag{Name: "force", Usage: "cancel the deployments that use it first"}),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return usageErrorf("package delete: give one package ID")
				}
				cl, err := a.client(c)
				if err != nil {
					return err
				}
				if err := cl.DeletePackage(c.Context, c.Args().First(), c.Bool("force")); err != nil {
					return apiErr("package delete", err)
				}
				if c.Bool("json") {
					return a.printJSON(struct {
						PackageID string `json:"package_id"`
						Deleted   bool   `json:"deleted"`
					}{c.Args().First(), true})
				}
				fmt.Fprintf(a.stdout, "deleted %s\n", c.Args().First())
				return nil
			},
		},
	}
}

// wantsPublish reports whether package build was told where a coordinator is.
func wantsPublish(c *cli.Context) bool {
	return c.String("coordinator-url") != "" || c.String("coordinator-dir") != "" || c.Bool("publish")
}

// publish uploads the fragments of manifest the coordinator lacks, from the
// local store, with a progress bar, then the manifest.
func (a *app) publish(c *cli.Context, manifest []byte, storeDir string) (*coordinator.PackageRecord, error) {
	m, err := core.DecodeManifest(manifest)
	if err != nil {
		return nil, usageErrorf("package publish: %v", err)
	}
	cl, err := a.client(c)
	if err != nil {
		return nil, err
	}
	missing, err := cl.Missing(c.Context, m.Fragments)
	if err != nil {
		return nil, apiErr("package publish", err)
	}
	if len(missing) > 0 {
		st, err := openStore(storeDir, a.quietLog())
		if err != nil {
			return nil, usageErrorf("package publish: %v", err)
		}
		defer st.Close()
		var bar io.Writer
		if !a.quiet && a.isTerminal(a.stderr) {
			pb := newProgressBar(a.stderr, int64(len(missing))*int64(m.FragmentSize), "uploading "+m.Name)
			defer pb.Finish()
			bar = pb
		}
		if err := uploadFragments(c.Context, cl, st, missing, bar); err != nil {
			return nil, err
		}
	}
	rec, err := cl.Publish(c.Context, manifest)
	if err != nil {
		return nil, apiErr("package publish", err)
	}
	return rec, nil
}

// uploadFragments sends the listed fragments from the local store, two at
// a time.
func uploadFragments(ctx context.Context, cl *coordinator.Client, st *dirStore, missing []string, bar io.Writer) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, s := range missing {
		id, err := core.ParseCID(s)
		if err != nil {
			return usageErrorf("package publish: %v", err)
		}
		g.Go(func() error {
			data, err := st.Get(id)
			if err != nil {
				return usageErrorf("package publish: fragment %s is not in the local store: build the package into this --store first (%v)", id, err)
			}
			if err := cl.PutFragment(ctx, id, data); err != nil {
				return apiErr("package publish: upload "+id.String(), err)
			}
			if bar != nil {
				_, _ = bar.Write(data)
			}
			return nil
		})
	}
	return g.Wait()
}
