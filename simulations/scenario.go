package simulations

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Strategies the runner knows, in report order.
var Strategies = []string{"mesh", "relay", "direct"}

// Fault kinds.
const (
	KindKillNode    = "kill-node"
	KindKillRelay   = "kill-relay"
	KindPartition   = "partition"
	KindHeal        = "heal"
	KindCorruptPeer = "corrupt-peer"
	KindSlowPeer    = "slow-peer"
	KindLateJoin    = "late-join"
)

// Scenario is one simulation as written in YAML. Rates are strings with
// units ("20Mbit/s"), sizes too ("32MiB"); sites and nodes in faults are
// numbered from 1.
type Scenario struct {
	Name          string   `yaml:"name"`
	Seed          uint64   `yaml:"seed"`
	Scale         float64  `yaml:"scale"`
	PackageSize   string   `yaml:"package_size"`
	FragmentSize  string   `yaml:"fragment_size"`
	CoordinatorUp string   `yaml:"coordinator_up"`
	Strategies    []string `yaml:"strategies"`
	Timeout       string   `yaml:"timeout"`
	Sites         Sites    `yaml:"sites"`
	Faults        []Fault  `yaml:"faults"`
	// Bounds are what the run must show; Run returns ErrBoundBroken when
	// a result breaks one (make sim and make bench-sim then fail).
	Bounds []Limit `yaml:"bounds"`
	Tuning Tuning  `yaml:"tuning"`

	// Parsed values, unscaled, in bytes and bytes/s; set by Validate.
	s parsed `yaml:"-"`
}

// Sites describes every site alike.
type Sites struct {
	Count         int     `yaml:"count"`
	Nodes         int     `yaml:"nodes"`
	WANUp         string  `yaml:"wan_up"`
	WANDown       string  `yaml:"wan_down"`
	LAN           string  `yaml:"lan"`
	Latency       string  `yaml:"latency"`     // WAN one-way delay
	LANLatency    string  `yaml:"lan_latency"` // one-way delay inside a site
	Heterogeneity float64 `yaml:"heterogeneity"`
}

// Fault happens at At: "40%" of the transfer or a duration after the
// deployment ("30s").
type Fault struct {
	At     string  `yaml:"at"`
	Kind   string  `yaml:"kind"`
	Site   int     `yaml:"site"`
	Node   int     `yaml:"node"`
	Factor float64 `yaml:"factor"` // slow-peer: rates divided by this (default 4)
}

// Tuning sets the fleet's timers for the scenario's size.
type Tuning struct {
	// Gossip is "fast" (test timings, default) or "lan" (memberlist's
	// LAN timings, for large fleets).
	Gossip string `yaml:"gossip"`
	// SyncInterval is each node's sync period (default 200ms).
	SyncInterval string `yaml:"sync_interval"`
	// CallTimeout bounds one coordinator exchange and is the base of the
	// fragment timeout (default 10s).
	CallTimeout string `yaml:"call_timeout"`
	// ConvergeTimeout bounds waiting for sites to elect relays (default
	// 2m).
	ConvergeTimeout string `yaml:"converge_timeout"`
}

type parsed struct {
	pkg, frag                    int64
	coordUp, wanUp, wanDown, lan float64
	latency, lanLatency          time.Duration
	timeout, converge            time.Duration
	syncInterval, callTimeout    time.Duration
	faults                       []fault
}

type fault struct {
	Fault
	pct   float64       // > 0: at this fraction of the transfer
	after time.Duration // else: this long after the deployment
}

// label names the fault for plots: kind, site and node.
func (f fault) label() string {
	switch {
	case f.Site == 0:
		return f.Kind
	case f.Node == 0:
		return fmt.Sprintf("%s site %d", f.Kind, f.Site)
	}
	return fmt.Sprintf("%s s%d-n%d", f.Kind, f.Site, f.Node)
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simulations: %w", err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// ParseScenario decodes YAML (unknown keys are an error) and validates it.
func ParseScenario(data []byte) (*Scenario, error) {
	var sc Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&sc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrBadScenario, err)
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Validate fills defaults and names the first bad field.
func (sc *Scenario) Validate() error {
	bad := func(field string, v any, why string) error {
		return fmt.Errorf("%w: %s %v: %s", ErrBadScenario, field, v, why)
	}
	var p parsed
	var err error
	if sc.Name == "" {
		sc.Name = "scenario"
	}
	if sc.Scale == 0 {
		sc.Scale = 1
	}
	if sc.Scale < 1 {
		return bad("scale", sc.Scale, "must be at least 1 (it divides rates and sizes)")
	}
	if p.pkg, err = parseSize(sc.PackageSize); err != nil {
		return bad("package_size", sc.PackageSize, err.Error())
	}
	if sc.FragmentSize == "" {
		sc.FragmentSize = "1MiB"
	}
	if p.frag, err = parseSize(sc.FragmentSize); err != nil {
		return bad("fragment_size", sc.FragmentSize, err.Error())
	}
	if sf := p.frag / int64(sc.Scale); sf < 64<<10 || p.frag > 64<<20 {
		return bad("fragment_size", sc.FragmentSize, fmt.Sprintf("÷ scale %g is %d bytes: must stay between 64KiB and 64MiB", sc.Scale, sf))
	}
	if p.coordUp, err = parseRate(sc.CoordinatorUp); err != nil {
		return bad("coordinator_up", sc.CoordinatorUp, err.Error())
	}
	if len(sc.Strategies) == 0 {
		sc.Strategies = slices.Clone(Strategies)
	}
	for i, s := range sc.Strategies {
		if !slices.Contains(Strategies, s) {
			return bad(fmt.Sprintf("strategies[%d]", i), strconv.Quote(s), "want mesh, relay or direct")
		}
	}
	if p.timeout, err = durationOr(sc.Timeout, 15*time.Minute); err != nil {
		return bad("timeout", sc.Timeout, err.Error())
	}
	if err := sc.Sites.validate(&p, bad); err != nil {
		return err
	}
	if err := sc.Tuning.validate(&p, bad); err != nil {
		return err
	}
	for i := range sc.Faults {
		f, err := sc.validateFault(i, bad)
		if err != nil {
			return err
		}
		p.faults = append(p.faults, f)
	}
	for i := range sc.Bounds {
		if err := sc.validateBound(i, bad); err != nil {
			return err
		}
	}
	sc.s = p
	return nil
}

func (s *Sites) validate(p *parsed, bad func(string, any, string) error) error {
	var err error
	if s.Count < 1 {
		return bad("sites.count", s.Count, "must be at least 1")
	}
	if s.Nodes < 1 {
		return bad("sites.nodes", s.Nodes, "must be at least 1")
	}
	for _, r := range []struct {
		field, v string
		dst      *float64
	}{{"sites.wan_up", s.WANUp, &p.wanUp}, {"sites.wan_down", s.WANDown, &p.wanDown}, {"sites.lan", s.LAN, &p.lan}} {
		if *r.dst, err = parseRate(r.v); err != nil {
			return bad(r.field, strconv.Quote(r.v), err.Error())
		}
	}
	if p.latency, err = durationOr(s.Latency, 0); err != nil {
		return bad("sites.latency", s.Latency, err.Error())
	}
	if p.lanLatency, err = durationOr(s.LANLatency, 0); err != nil {
		return bad("sites.lan_latency", s.LANLatency, err.Error())
	}
	if s.Heterogeneity < 0 || s.Heterogeneity >= 1 {
		return bad("sites.heterogeneity", s.Heterogeneity, "must be in [0, 1): node rates are drawn from [1-h, 1] × lan")
	}
	return nil
}

func (t *Tuning) validate(p *parsed, bad func(string, any, string) error) error {
	var err error
	switch t.Gossip {
	case "":
		t.Gossip = "fast"
	case "fast", "lan":
	default:
		return bad("tuning.gossip", strconv.Quote(t.Gossip), "want fast or lan")
	}
	if p.syncInterval, err = durationOr(t.SyncInterval, 200*time.Millisecond); err != nil {
		return bad("tuning.sync_interval", t.SyncInterval, err.Error())
	}
	if p.callTimeout, err = durationOr(t.CallTimeout, 10*time.Second); err != nil {
		return bad("tuning.call_timeout", t.CallTimeout, err.Error())
	}
	if p.converge, err = durationOr(t.ConvergeTimeout, 2*time.Minute); err != nil {
		return bad("tuning.converge_timeout", t.ConvergeTimeout, err.Error())
	}
	return nil
}

func (sc *Scenario) validateFault(i int, bad func(string, any, string) error) (fault, error) {
	f := fault{Fault: sc.Faults[i]}
	field := func(name string) string { return fmt.Sprintf("faults[%d].%s", i, name) }
	needSite, needNode := true, true
	switch f.Kind {
	case KindKillRelay, KindPartition, KindHeal:
		needNode = false
	case KindKillNode, KindCorruptPeer, KindSlowPeer, KindLateJoin:
	default:
		return f, bad(field("kind"), strconv.Quote(f.Kind), "want kill-node, kill-relay, partition, heal, corrupt-peer, slow-peer or late-join")
	}
	if needSite && (f.Site < 1 || f.Site > sc.Sites.Count) {
		return f, bad(field("site"), f.Site, fmt.Sprintf("want 1 to %d (sites.count)", sc.Sites.Count))
	}
	if needNode && (f.Node < 1 || f.Node > sc.Sites.Nodes) {
		return f, bad(field("node"), f.Node, fmt.Sprintf("want 1 to %d (sites.nodes)", sc.Sites.Nodes))
	}
	if f.Kind == KindSlowPeer && f.Factor == 0 {
		f.Factor = 4
	}
	if f.Factor < 0 || (f.Kind == KindSlowPeer && f.Factor < 1) {
		return f, bad(field("factor"), f.Factor, "must be at least 1")
	}
	switch {
	case f.Kind == KindCorruptPeer:
		if f.At != "" && f.At != "0" && f.At != "0s" {
			return f, bad(field("at"), strconv.Quote(f.At), "a corrupt peer serves bad bytes from the start: leave at empty or 0")
		}
	case strings.HasSuffix(f.At, "%"):
		v, err := strconv.ParseFloat(strings.TrimSuffix(f.At, "%"), 64)
		if err != nil || v <= 0 || v >= 100 {
			return f, bad(field("at"), strconv.Quote(f.At), "want a percentage between 0 and 100, or a duration")
		}
		if f.Kind == KindLateJoin {
			return f, bad(field("at"), strconv.Quote(f.At), "a late join is at a duration after the deployment, e.g. 10s")
		}
		f.pct = v / 100
	default:
		d, err := time.ParseDuration(f.At)
		if err != nil || d < 0 {
			return f, bad(field("at"), strconv.Quote(f.At), "want \"40%\" (of the transfer) or a duration such as 30s")
		}
		f.after = d
	}
	return f, nil
}

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration such as 30s")
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return d, nil
}

// Nodes is the fleet size.
func (sc *Scenario) Nodes() int { return sc.Sites.Count * sc.Sites.Nodes }

// scaled divides a rate or a size by the scale.
func (sc *Scenario) scaled(v float64) float64 { return v / sc.Scale }

// scaledSizes are the package and fragment sizes that actually move:
// the fragment a multiple of 64 KiB, the package a whole number of
// scaled fragments' worth as before (the fragment count is kept).
func (sc *Scenario) scaledSizes() (pkg int64, frag int) {
	f := max(int64(sc.scaled(float64(sc.s.frag)))/(64<<10)*(64<<10), 64<<10)
	return int64(sc.scaled(float64(sc.s.pkg))), int(f)
}
