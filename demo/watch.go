package demo

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

type cidT = cid.Cid

// watch shows the deployment's table until it is done: redrawn in place on
// a terminal, else a line whenever the counts change.
func (f *fleet) watch(ctx context.Context, id string) (*coordinator.DeploymentView, error) {
	var last string
	var d *coordinator.DeploymentView
	err := poll(ctx, 5*time.Minute, "the deployment to finish", func() (bool, error) {
		var err error
		if d, err = f.cl.Deployment(ctx, id); err != nil {
			return false, err
		}
		if f.cfg.Live {
			fmt.Fprint(f.cfg.Out, "\033[H\033[2J")
			render(f.cfg.Out, d)
		} else if c := counts(d); c != last {
			fmt.Fprintf(f.cfg.Out, "  %s  %s\n", time.Now().Format("15:04:05"), c)
			last = c
		}
		return d.Done, nil
	})
	if err != nil {
		return nil, err
	}
	if !f.cfg.Live {
		fmt.Fprintln(f.cfg.Out)
		render(f.cfg.Out, d)
	}
	return d, nil
}

func counts(d *coordinator.DeploymentView) string {
	var parts []string
	for st, n := range d.Counts {
		parts = append(parts, fmt.Sprintf("%s %d", st, n))
	}
	slices.Sort(parts)
	return d.State + ": " + strings.Join(parts, ", ")
}

func render(out interface{ Write([]byte) (int, error) }, d *coordinator.DeploymentView) {
	fmt.Fprintf(out, "deployment %s  %s\n\n", d.ID, counts(d))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tNODE\tSTATE\tEXIT\tFETCHED\tOUTPUT")
	for _, r := range d.Nodes {
		exit := "-"
		if r.State == core.StateSuccess {
			exit = fmt.Sprint(r.ExitCode)
		}
		outLine := strings.TrimSpace(r.Output)
		if i := strings.LastIndexByte(outLine, '\n'); i >= 0 {
			outLine = outLine[i+1:]
		}
		if outLine == "" {
			outLine = r.Detail
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Site, r.Name, r.State, exit, human(r.BytesFetched), outLine)
	}
	w.Flush()
}
