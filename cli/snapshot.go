package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/coordinator"
)

func (a *app) snapshotCommand(dirFlag *cli.StringFlag) *cli.Command {
	return &cli.Command{
		Name:  "snapshot",
		Usage: "back up a running coordinator to a file, or restore one into a new directory",
		Subcommands: []*cli.Command{
			{
				Name: "save",
				Usage: "write a consistent snapshot of the running coordinator (state over the admin API, keys and " +
					"config.yaml from --dir) to FILE, mode 0600: it holds the order key, keep it as you keep that key",
				UsageText: "relaymesh coordinator snapshot save FILE [--dir DIR] [--coordinator-url URL] [--ca PEM]",
				Flags: []cli.Flag{dirFlag,
					&cli.StringFlag{Name: "coordinator-url", Usage: "admin API URL; default the one the running coordinator wrote into DIR"},
					&cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) of the admin API's TLS certificate"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a summary"},
				},
				Action: a.snapshotSave,
			},
			{
				Name:      "restore",
				Usage:     "restore FILE into DIR, a directory that does not exist yet or is empty; nothing is written when FILE is refused",
				UsageText: "relaymesh coordinator snapshot restore FILE --dir DIR",
				Flags:     []cli.Flag{dirFlag, &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a summary"}},
				Action:    a.snapshotRestore,
			},
		},
	}
}

func (a *app) snapshotSave(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("coordinator snapshot save: give one FILE to write, e.g. coordinator-%s.rmsnap", time.Now().UTC().Format("20060102"))
	}
	file, dir := c.Args().First(), c.String("dir")
	url, token, err := coordinator.AdminFromDir(dir)
	if err != nil && c.String("coordinator-url") == "" {
		return usageErrorf("coordinator snapshot save: --dir %q: %v (snapshots are taken from a running coordinator)", dir, err)
	}
	if token == "" { // admin.addr missing but --coordinator-url given
		b, rerr := os.ReadFile(filepath.Join(dir, coordinator.FileAdminToken))
		if rerr != nil {
			return usageErrorf("coordinator snapshot save: --dir %q: %v", dir, rerr)
		}
		token = strings.TrimSpace(string(b))
	}
	cl, err := coordinator.NewClient(orStr(c.String("coordinator-url"), url), token, c.String("ca"))
	if err != nil {
		return usageErrorf("coordinator snapshot save: %v", err)
	}
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-*")
	if err != nil {
		return usageErrorf("coordinator snapshot save: %s: %v", file, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	info, err := cl.SaveSnapshot(c.Context, dir, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		if errors.Is(err, coordinator.ErrConflict) || errors.Is(err, coordinator.ErrUnauthorized) {
			return usageErrorf("coordinator snapshot save: %v", err)
		}
		return cli.Exit(fmt.Errorf("coordinator snapshot save: %w (nothing written to %s)", err, file), exitFailure)
	}
	if c.Bool("json") {
		return a.printJSON(info)
	}
	st, _ := os.Stat(file)
	fmt.Fprintf(a.stdout, "snapshot of coordinator %s written to %s (%s): %d key files, %d state entries\n",
		info.PeerID, file, humanBytes(st.Size()), info.Files, info.Entries)
	return nil
}

func (a *app) snapshotRestore(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("coordinator snapshot restore: give one FILE written by 'coordinator snapshot save'")
	}
	if !c.IsSet("dir") {
		return usageErrorf("coordinator snapshot restore: --dir is required: name the new coordinator directory")
	}
	file, dir := c.Args().First(), c.String("dir")
	f, err := os.Open(file)
	if err != nil {
		return usageErrorf("coordinator snapshot restore: %v", err)
	}
	defer f.Close()
	res, err := coordinator.RestoreSnapshot(f, dir, a.log)
	if err != nil {
		if errors.Is(err, coordinator.ErrBadSnapshot) || errors.Is(err, coordinator.ErrConflict) {
			return usageErrorf("coordinator snapshot restore: %s: %v; nothing was restored", file, err)
		}
		return cli.Exit(fmt.Errorf("coordinator snapshot restore: %w; nothing was restored", err), exitFailure)
	}
	if c.Bool("json") {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "restored coordinator %s (snapshot of %s, relaymesh %s) into %s: %d nodes, %d packages, %d deployments\n"+
		"new orders are numbered from %d, past any signed after the snapshot\n"+
		"next: relaymesh coordinator serve --dir %s (on the address the nodes enrolled with)\n",
		res.Info.PeerID, res.Info.Created.Format(time.RFC3339), res.Info.Version, res.Dir, res.Nodes, res.Packages, res.Deployments,
		res.OrderSeq+1, res.Dir)
	return nil
}
