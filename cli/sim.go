package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/simulations"
)

func (a *app) simCommand() *cli.Command {
	return &cli.Command{
		Name:  "sim",
		Usage: "run network simulations of a fleet in this process",
		Subcommands: []*cli.Command{
			{
				Name:      "run",
				Usage:     "run a scenario file and report per strategy",
				UsageText: "relaymesh sim run FILE [--strategy mesh|relay|direct]... [--out DIR] [--timeline FILE] [--json]",
				Description: "Runs the real coordinator and nodes in one process over a shaped network, once per " +
					"strategy, and prints a table. With --out, also writes DIR/report.json, DIR/cdf.svg and " +
					"DIR/wan.svg. Scenarios live in simulations/scenarios/.",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "strategy", Usage: "strategy to run (repeatable); default: the scenario's list"},
					&cli.StringFlag{Name: "out", Usage: "directory for report.json and the SVG plots"},
					&cli.BoolFlag{Name: "json", Usage: "print the report (report.json's keys) instead of the table"},
					&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the whole run to `FILE` (go tool pprof reads it)"},
					&cli.StringFlag{Name: "timeline", Usage: "write a CSV to `FILE`: per node, when its download began, when it had the manifest, each fragment and the whole package"},
				},
				Action: a.simRun,
			},
		},
	}
}

func (a *app) simRun(c *cli.Context) (err error) {
	if c.NArg() != 1 {
		return usageErrorf("sim run: give one scenario file, e.g. simulations/scenarios/bench-4x8.yaml")
	}
	sc, err := simulations.LoadScenario(c.Args().First())
	if err != nil {
		if errors.Is(err, simulations.ErrBadScenario) {
			return usageErrorf("sim run: %w", err)
		}
		return err
	}
	if path := c.String("cpuprofile"); path != "" {
		stop, err := startCPUProfile(path)
		if err != nil {
			return err
		}
		defer stop()
	}
	opts := simulations.Options{Strategies: c.StringSlice("strategy"), Logger: a.quietLog()}
	if path := c.String("timeline"); path != "" {
		f, ferr := createFile(path)
		if ferr != nil {
			return usageErrorf("--timeline: %w (give a writable file path)", ferr)
		}
		defer func() {
			if cerr := f.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("--timeline: %w", cerr)
			}
		}()
		if opts.Timeline, ferr = simulations.NewTimelineWriter(f); ferr != nil {
			return ferr
		}
	}
	if !a.quiet && a.isTerminal(a.stderr) {
		p := &simProgress{a: a}
		opts.Progress = p.update
		defer p.finish()
	}
	rep, err := simulations.Run(c.Context, sc, opts)
	if rep != nil {
		if c.Bool("json") {
			if jerr := a.printJSON(rep); jerr != nil {
				return jerr
			}
		} else if terr := rep.WriteTable(a.stdout); terr != nil {
			return terr
		}
		if out := c.String("out"); out != "" {
			if werr := rep.WriteFiles(out); werr != nil {
				return werr
			}
			w := a.stdout
			if c.Bool("json") {
				w = a.stderr // stdout holds only the JSON
			}
			fmt.Fprintf(w, "wrote %s\n", strings.Join([]string{
				filepath.Join(out, "report.json"), filepath.Join(out, "cdf.svg"), filepath.Join(out, "wan.svg")}, ", "))
		}
	}
	return err
}

// simProgress shows one bar per strategy: nodes done out of the fleet.
type simProgress struct {
	a        *app
	mu       sync.Mutex
	strategy string
	bar      *progressbar.ProgressBar
}

func (p *simProgress) update(strategy string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar == nil || p.strategy != strategy {
		p.finishLocked()
		p.strategy = strategy
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(p.a.stderr),
			progressbar.OptionSetDescription(strategy),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.a.stderr) }),
		)
	}
	_ = p.bar.Set(done)
}

func (p *simProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
}

func (p *simProgress) finishLocked() {
	if p.bar != nil {
		_ = p.bar.Finish()
		p.bar = nil
	}
}

// startCPUProfile profiles the process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, usageErrorf("--cpuprofile: %w (give a writable file path)", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, usageErrorf("--cpuprofile: %w (give a writable file path)", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

// createFile creates path, and its directory when missing.
func createFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.Create(path)
}
