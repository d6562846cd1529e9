package simulations

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// Options tune one Run.
type Options struct {
	// Strategies overrides the scenario's list when not empty.
	Strategies []string
	// Logger receives the harness's and the fleet's logs; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called about every 200 ms with the strategy
	// running and how many of its nodes are done out of how many.
	Progress func(strategy string, done, total int)
	// TempDir is where node directories go; "" means os.TempDir().
	TempDir string
	// Timeline, when set, receives every strategy's per-node timeline
	// rows (see NewTimelineWriter): when each node's download began, when
	// it had the manifest, each fragment and the whole package.
	Timeline *csv.Writer
	// Bubble, when set, runs the scenario in virtual time: Run calls it
	// once per strategy, and it must call run inside a testing/synctest
	// bubble (TestVirtualSim does), where the clock moves only when every
	// goroutine of the fleet is blocked. Times are then simulated seconds,
	// CPU costs none, and each result's WallS is what the strategy cost in
	// wall time. ctx does not reach into the bubble: the scenario's
	// timeout bounds the run.
	Bubble func(run func())
	// Beat, when set, is called from inside the bubble about every
	// simulated 100 ms with the simulated time, so that a watchdog outside
	// it sees whether simulated time still moves.
	Beat func(now time.Time)
}

// Run runs the scenario once per strategy, each on a fresh fleet, and
// returns the report. A strategy that fails to set up is reported with
// its error; Run itself fails only on bad options or a cancelled ctx.
func Run(ctx context.Context, sc *Scenario, opts Options) (*Report, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	strategies := sc.Strategies
	if len(opts.Strategies) > 0 {
		strategies = opts.Strategies
	}
	for _, s := range strategies {
		if !slices.Contains(Strategies, s) {
			return nil, fmt.Errorf("%w: strategy %q: want mesh, relay or direct", ErrBadScenario, s)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	virtual := opts.Bubble != nil
	rep := &Report{Scenario: sc.Name, Seed: sc.Seed, Scale: sc.Scale, PackageSize: sc.s.pkg, Virtual: virtual, Notes: notes(sc, virtual)}
	for i := range sc.Sites.Count {
		rep.Sites = append(rep.Sites, fmt.Sprintf("site-%d", i+1))
	}
	for _, s := range strategies {
		var res Result
		if virtual {
			wall := time.Now()
			opts.Bubble(func() { res = runVirtual(sc, s, opts, log) })
			res.WallS = time.Since(wall).Seconds()
		} else {
			res = runStrategy(ctx, sc, s, opts, log, false)
		}
		res.PeakRSSBytes = peakRSS()
		rep.Results = append(rep.Results, res)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	var broken int
	rep.Bounds, broken = checkBounds(sc.Bounds, rep)
	if broken > 0 {
		return rep, fmt.Errorf("%w: %d of %d bounds of %s broken (see the bound lines above)", ErrBoundBroken, broken, len(rep.Bounds), sc.Name)
	}
	return rep, nil
}

func notes(sc *Scenario, virtual bool) []string {
	pkg, frag := sc.scaledSizes()
	clock := "times are wall-clock seconds, equal to unscaled times"
	if virtual {
		clock = "times are simulated seconds (virtual time: testing/synctest; CPU costs no time), equal to unscaled times; wall s is what the run cost"
	}
	return []string{
		fmt.Sprintf("scale %g: rates and sizes ÷ %g (package %d B, fragment %d B moved); %s", sc.Scale, sc.Scale, pkg, frag, clock),
		"every libp2p byte is shaped (simulations/vnet: orders, syncs, status, manifests, fragments, Noise and yamux framing; WAN bytes are wire bytes); site gossip is not (LAN only); a partition resets the site's connections to the coordinator and refuses new ones until the heal",
		fmt.Sprintf("control traffic is not scaled: at scale %g it takes %g x its real share of every link and of the WAN ratios", sc.Scale, sc.Scale),
		"t_last/t_median: when each node had every fragment verified (its install began), from the deployment; success is the coordinator's SUCCESS row",
		"T* uses configured per-node rates (heterogeneity included, slow-peer faults not)",
	}
}

func runStrategy(ctx context.Context, sc *Scenario, strategy string, opts Options, log *slog.Logger, virtual bool) Result {
	res := Result{Strategy: strategy, Nodes: sc.Nodes(), TStar: bound(sc).TStar()}
	root, err := os.MkdirTemp(opts.TempDir, "relaymesh-sim-*")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(root)
	setup := time.Now()
	f, err := newFleet(ctx, sc, strategy, root, log.With("strategy", strategy), virtual)
	if f != nil {
		defer f.close()
	}
	if err == nil && strategy != "direct" {
		// direct nodes stay out of their site's pool: nothing to converge.
		err = f.waitSites(ctx, sc.s.converge)
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.SetupS = time.Since(setup).Seconds()
	rec, err := f.publish()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	before := f.net.Stats()
	d, err := f.coord.CreateDeployment(coordinator.DeployRequest{Packages: []string{rec.ID}, All: true})
	if err != nil {
		res.Error = err.Error()
		return res
	}
	t0 := time.Now()
	log.Info("deployed", "strategy", strategy, "deployment", d.ID, "nodes", len(f.nodes))
	err = f.watch(ctx, d.ID, rec.Manifest, t0, opts.Progress)
	if err != nil {
		res.Error = err.Error()
	}
	f.collect(&res, d.ID, t0, before, rec.Manifest.Size)
	if opts.Timeline != nil {
		pkg, perr := core.ParseCID(rec.ID)
		if perr != nil {
			res.Error = perr.Error()
		} else if terr := f.writeTimeline(opts.Timeline, pkg, rec.Manifest, t0); terr != nil && res.Error == "" {
			res.Error = terr.Error()
		}
	}
	return res
}

// publish builds the seeded random package on the coordinator.
func (f *fleet) publish() (*coordinator.PackageRecord, error) {
	pkg, frag := f.sc.scaledSizes()
	data := make([]byte, pkg)
	var seed [32]byte
	for i := range 8 {
		seed[i] = byte(f.sc.Seed >> (8 * i))
	}
	rand.NewChaCha8(seed).Read(data)
	m := core.Manifest{Name: f.sc.Name, Version: "1", OS: "any", Arch: "any", Action: core.ActionLaunch,
		Command: []string{"true"}, Priority: 5}
	rec, err := f.coord.BuildPackage(m, bytesReader(data), frag)
	if err != nil {
		return nil, fmt.Errorf("%w: build package: %w", ErrSetup, err)
	}
	return rec, nil
}

// bound is the scenario's T* inputs, unscaled.
func bound(sc *Scenario) Bound {
	p := sc.s
	b := Bound{S: float64(p.pkg), U: p.coordUp}
	rng := rand.New(rand.NewPCG(sc.Seed, 0x5eed)) // the fleet's draw, same order
	for range sc.Sites.Count {
		s := SiteBound{W: p.wanDown}
		for range sc.Sites.Nodes {
			k := 1 - sc.Sites.Heterogeneity*rng.Float64()
			s.Down = append(s.Down, p.lan*k)
			s.Up = append(s.Up, p.lan*k)
		}
		b.Sites = append(b.Sites, s)
	}
	return b
}
