//go:build netns && linux

package netns

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// TestBenchNetns is one run of `make bench-netns`: a fleet set up the way
// the README tells an admin to (coordinator init/serve, token create,
// node enroll, node run, no config.yaml anywhere), in network namespaces
// with every link shaped by tbf: each site's WAN both ways, every node's
// port both ways, the coordinator's uplink. Once the fleet is enrolled and
// idle it deploys a random package with `deploy create --all` and reports
// what an admin gets: the last and median node's time to DOWNLOADED and to
// SUCCESS (from the nodes' own logs, all on this machine's clock) against
// the lower bound T* of DESIGN.md, the WAN bytes in and out of each site
// from the kernel's counters of the WAN veths (frames: a perfect TCP copy
// reads about 1.046 × S), the coordinator's egress, the CPU seconds of
// every relaymesh process during the deployment, and peak RSS per node.
//
// Knobs: RELAYMESH_BENCH_SITES (4), RELAYMESH_BENCH_NODES per site (8),
// RELAYMESH_BENCH_MIB (32), RELAYMESH_BENCH_WAN (20mbit),
// RELAYMESH_BENCH_PORT (200mbit), RELAYMESH_BENCH_COORD (100mbit),
// RELAYMESH_BENCH_COORD_CONFIG (lines appended to the coordinator's
// config.yaml, for experiments), RELAYMESH_BENCH_LOGS (a directory to copy the daemons' logs into),
// RELAYMESH_BENCH_LABEL (a name for the run), RELAYMESH_BENCH_JSON (a
// file each run appends its result to, one JSON object a line; the table
// of every run in it is printed after this one).
func TestBenchNetns(t *testing.T) {
	if why := prerequisites(); why != "" {
		t.Skip("bench-netns skipped: " + why)
	}
	p := params{
		sites: envInt(t, "RELAYMESH_BENCH_SITES", 4), nodes: envInt(t, "RELAYMESH_BENCH_NODES", 8),
		mib: envInt(t, "RELAYMESH_BENCH_MIB", 32), rate: envStr("RELAYMESH_BENCH_WAN", "20mbit"),
		portRate: envStr("RELAYMESH_BENCH_PORT", "200mbit"), coordRate: envStr("RELAYMESH_BENCH_COORD", "100mbit"),
		prefix: os.Getenv("RELAYMESH_NETNS_PREFIX"),
	}
	if p.prefix == "" {
		p.prefix = loadParams(t).prefix
	}
	if p.sites > 50 || p.nodes > 200 {
		t.Fatalf("at most 50 sites and 200 nodes per site")
	}
	bin := binary(t)
	net, f, tp := setUp(t, p, bin)
	root := f.root
	total := p.sites * p.nodes
	t.Logf("prefix %s: %d sites × %d nodes, %d MiB, WAN %s, ports %s, coordinator uplink %s",
		p.prefix, p.sites, p.nodes, p.mib, p.rate, p.portRate, p.coordRate)

	// The coordinator, on its defaults.
	f.cli(tp.coord, "coordinator", "init", "--dir", f.coord)
	if extra := os.Getenv("RELAYMESH_BENCH_COORD_CONFIG"); extra != "" {
		// An experiment: "key: value" lines replace those keys in the
		// coordinator's config.yaml (or are appended).
		path := filepath.Join(f.coord, "config.yaml")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		for _, kv := range strings.Split(extra, ";") {
			key, _, ok := strings.Cut(strings.TrimSpace(kv), ":")
			if !ok {
				t.Fatalf("RELAYMESH_BENCH_COORD_CONFIG: %q is not key: value", kv)
			}
			i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, key+":") })
			if i < 0 {
				lines = append(lines, strings.TrimSpace(kv))
			} else {
				lines[i] = strings.TrimSpace(kv)
			}
		}
		writeFile(t, path, strings.Join(lines, "\n")+"\n")
	}
	f.start(tp.coord, "coordinator", "coordinator", "serve", "--dir", f.coord)
	coordAddr := waitCoordinator(t, f, tp)

	// The nodes, as the README says: enroll, then run; nothing configured.
	for k := 1; k <= p.sites; k++ {
		tok := strings.TrimSpace(f.admin("token", "create", "--site", siteName(k), "--uses", strconv.Itoa(p.nodes)))
		for i := 1; i <= p.nodes; i++ {
			ns, name := tp.nodes[k-1][i-1], nodeName(k, i)
			dir := filepath.Join(root, name)
			f.cli(ns, "node", "enroll", "--coordinator", coordAddr, "--token", tok, "--dir", dir, "--name", name)
			f.start(ns, name, "node", "run", "--dir", dir)
		}
	}
	enrolled := time.Now()
	waitFleet(t, f, total, p.sites, 3*time.Minute)
	t.Logf("fleet up %.1fs after the last enrollment", time.Since(enrolled).Seconds())

	size := p.mib << 20
	arch := filepath.Join(root, "payload.tar.gz")
	S := writeRandomPackage(t, arch, size)
	pkg := strings.TrimSpace(f.admin("package", "build", arch, "--name", "bench-payload", "--version", "1",
		"--action", "launch", "--command", "sh run.sh",
		"--store", filepath.Join(root, "store"), "--out", filepath.Join(root, "payload.manifest.json")))

	wan := func() (in, out []int64, coordTx int64) {
		for k := 1; k <= p.sites; k++ {
			rx, tx := net.counters(tp.routers[k-1], routerWANDev)
			in, out = append(in, rx), append(out, tx)
		}
		_, coordTx = net.counters(tp.coord, "eth0")
		return in, out, coordTx
	}
	wanTotal := func() int64 {
		in, _, c := wan()
		sum := c
		for _, v := range in {
			sum += v
		}
		return sum
	}
	waitQuiet(t, wanTotal)
	in0, out0, c0 := wan()
	cpu0 := f.cpuTicks()

	// Sample the sites' WAN download counters while the deployment runs:
	// when the first and last byte crossed and how busy the link was.
	stopSampling := make(chan struct{})
	sampled := make(chan []wanSample, 1)
	go func() {
		var out []wanSample
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			out = append(out, wanSample{at: time.Now(), in: readRx(tp, p.sites)})
			select {
			case <-stopSampling:
				sampled <- out
				return
			case <-tk.C:
			}
		}
	}()
	start := time.Now()
	var d coordinator.DeploymentView
	f.adminJSON(&d, "deploy", "create", pkg, "--all")
	eventually(t, 10*time.Minute, "deployment "+d.ID+" done", func() (bool, string) {
		id := d.ID
		d = coordinator.DeploymentView{}
		f.adminJSON(&d, "deploy", "show", id)
		return d.Done, fmt.Sprintf("%s %v", d.State, d.Counts)
	})
	adminDone := time.Since(start)
	close(stopSampling)
	samples := <-sampled
	cpu1 := f.cpuTicks()
	rss := f.peakRSS()
	waitQuiet(t, wanTotal)
	in1, out1, c1 := wan()

	r := benchResult{
		Label: os.Getenv("RELAYMESH_BENCH_LABEL"), Sites: p.sites, Nodes: p.nodes, Bytes: S,
		WAN: p.rate, Port: p.portRate, Coord: p.coordRate, AdminDone: adminDone.Seconds(), State: d.State,
	}
	r.TStar = lowerBound(t, float64(S), p)
	var dl, ok []float64
	for k := 1; k <= p.sites; k++ {
		for i := 1; i <= p.nodes; i++ {
			a, b := nodeTimes(t, filepath.Join(root, nodeName(k, i)+".log"), d.ID, start)
			if a > 0 {
				dl = append(dl, a)
			}
			if b > 0 {
				ok = append(ok, b)
			}
		}
		r.WANIn = append(r.WANIn, float64(in1[k-1]-in0[k-1])/float64(S))
		r.WANOut = append(r.WANOut, float64(out1[k-1]-out0[k-1])/float64(S))
	}
	r.CoordEgress = float64(c1-c0) / float64(S)
	wanBps, _ := rateBits(p.rate)
	r.WANFirst, r.WANLast, r.WANBusy = wanActivity(samples, start, float64(wanBps)/8, S)
	r.Downloaded, r.Success = len(dl), len(ok)
	r.DLLast, r.DLMedian = last(dl), median(dl)
	r.OKLast, r.OKMedian = last(ok), median(ok)
	r.CPUSeconds = float64(cpu1-cpu0) / clockTicks
	var nodeRSS []float64
	for name, kb := range rss {
		if name == "coordinator" {
			r.CoordRSSMiB = float64(kb) / 1024
			continue
		}
		nodeRSS = append(nodeRSS, float64(kb)/1024)
	}
	r.NodeRSSMaxMiB, r.NodeRSSMedianMiB = last(nodeRSS), median(nodeRSS)

	t.Log("\n" + benchTable([]benchResult{r}) + "\nWAN in ÷ S per site: " + fmtRatios(r.WANIn) + "\nWAN out ÷ S per site: " + fmtRatios(r.WANOut) +
		fmt.Sprintf("\nslowest site's WAN: 1%% of S in at %.2fs, 99%% at %.2fs, %.0f%% of the link rate in between", r.WANFirst, r.WANLast, 100*r.WANBusy))
	if dir := os.Getenv("RELAYMESH_BENCH_LOGS"); dir != "" {
		// Keep the daemons' logs of this run for a closer look.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		logs, _ := filepath.Glob(filepath.Join(root, "*.log"))
		for _, l := range logs {
			if b, err := os.ReadFile(l); err == nil {
				_ = os.WriteFile(filepath.Join(dir, filepath.Base(l)), b, 0o644)
			}
		}
	}
	if path := os.Getenv("RELAYMESH_BENCH_JSON"); path != "" {
		appendResult(t, path, r)
		t.Log("every run in " + path + ":\n" + benchTable(readResults(t, path)))
	}
	if d.State != coordinator.DeployCompleted || d.Counts[core.StateSuccess] != total || len(ok) != total {
		t.Errorf("deployment %s: %s %v, %d SUCCESS lines in the node logs; want %s with %d SUCCESS", d.ID, d.State, d.Counts, len(ok), coordinator.DeployCompleted, total)
	}
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// waitCoordinator waits for the admin API and returns the coordinator's
// multiaddr on the WAN.
func waitCoordinator(t *testing.T, f *fleet, tp *topology) string {
	t.Helper()
	eventually(t, 60*time.Second, "coordinator admin API", func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, se, err := f.try(ctx, tp.coord, "nodes", "list", "--coordinator-dir", f.coord)
		return err == nil, fmt.Sprint(err, " ", strings.TrimSpace(se))
	})
	var addr string
	eventually(t, 30*time.Second, "coordinator p2p.addrs", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(f.coord, coordinator.FileP2PAddrs))
		if err != nil {
			return false, err.Error()
		}
		for _, a := range strings.Fields(string(b)) {
			if strings.HasPrefix(a, "/ip4/"+tp.coordIP+"/") && strings.Contains(a, "/p2p/") {
				addr = a
				return true, ""
			}
		}
		return false, string(b)
	})
	return addr
}

// waitFleet waits until the coordinator sees total nodes alive and a
// relay in each of its sites.
func waitFleet(t *testing.T, f *fleet, total, sites int, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d nodes alive, every site with a relay", total), func() (bool, string) {
		var vs []coordinator.SiteView
		f.adminJSON(&vs, "sites", "list")
		alive, withRelay := 0, 0
		var st []string
		for _, s := range vs {
			alive += s.Alive
			if len(s.Relays) > 0 {
				withRelay++
			}
			st = append(st, fmt.Sprintf("%s alive %d relays %d", s.Site, s.Alive, len(s.Relays)))
		}
		return alive == total && withRelay == sites, strings.Join(st, "; ")
	})
}

// waitQuiet waits until total() moves by less than 64 KiB between reads
// 250 ms apart: the links carry only heartbeats.
func waitQuiet(t *testing.T, total func() int64) {
	t.Helper()
	prev := int64(-1)
	eventually(t, 60*time.Second, "links quiet", func() (bool, string) {
		v := total()
		moved := v - prev
		ok := prev >= 0 && moved < 64<<10
		prev = v
		return ok, fmt.Sprintf("%d bytes since the last read", moved)
	})
}

// lowerBound is DESIGN.md's T* in seconds for S bytes.
func lowerBound(t *testing.T, S float64, p params) float64 {
	t.Helper()
	rate := func(s string) float64 {
		b, err := rateBits(s)
		if err != nil {
			t.Fatal(err)
		}
		return float64(b) / 8
	}
	U, W, d := rate(p.coordRate), rate(p.rate), rate(p.portRate)
	u := d
	n := float64(p.nodes)
	return max(S/U, S/W, S/d, n*S/(W+n*u))
}

// nodeTimes reads, from a node's log, how long after start it logged
// "downloaded" and "installed … state=SUCCESS" for order; 0 when absent.
func nodeTimes(t *testing.T, path, order string, start time.Time) (downloaded, success float64) {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Errorf("node log: %v", err)
		return 0, 0
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "order="+order) {
			continue
		}
		at := func() float64 {
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			tm, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return 0
			}
			return tm.Sub(start).Seconds()
		}
		switch {
		case strings.Contains(line, "msg=downloaded ") && downloaded == 0:
			downloaded = at()
		case strings.Contains(line, "msg=installed ") && strings.Contains(line, "state=SUCCESS") && success == 0:
			success = at()
		}
	}
	return downloaded, success
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on Linux).
const clockTicks = 100

// cpuTicks sums user and system time of every daemon still running.
func (f *fleet) cpuTicks() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sum int64
	for _, p := range f.procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 12 {
			u, _ := strconv.ParseInt(fields[11], 10, 64)
			k, _ := strconv.ParseInt(fields[12], 10, 64)
			sum += u + k
		}
	}
	return sum
}

// peakRSS reads VmHWM (KiB) of every daemon, by name.
func (f *fleet) peakRSS() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for _, p := range f.procs {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				out[p.name] = kb
			}
		}
	}
	return out
}

// benchResult is one run of TestBenchNetns, as it goes into the JSON file.
type benchResult struct {
	Label            string    `json:"label,omitempty"`
	Sites            int       `json:"sites"`
	Nodes            int       `json:"nodes_per_site"`
	Bytes            int64     `json:"package_bytes"`
	WAN              string    `json:"wan_rate"`
	Port             string    `json:"port_rate"`
	Coord            string    `json:"coordinator_rate"`
	TStar            float64   `json:"t_star_s"`
	State            string    `json:"state"`
	Downloaded       int       `json:"downloaded"`
	Success          int       `json:"success"`
	DLLast           float64   `json:"downloaded_last_s"`
	DLMedian         float64   `json:"downloaded_median_s"`
	OKLast           float64   `json:"success_last_s"`
	OKMedian         float64   `json:"success_median_s"`
	AdminDone        float64   `json:"admin_done_s"`
	WANIn            []float64 `json:"wan_in_per_s"`
	WANOut           []float64 `json:"wan_out_per_s"`
	CoordEgress      float64   `json:"coordinator_egress_per_s"`
	CPUSeconds       float64   `json:"cpu_seconds"`
	NodeRSSMaxMiB    float64   `json:"node_peak_rss_max_mib"`
	NodeRSSMedianMiB float64   `json:"node_peak_rss_median_mib"`
	CoordRSSMiB      float64   `json:"coordinator_peak_rss_mib"`
	// WANFirst and WANLast: when the first and the last 1% of the package
	// had crossed the busiest site's WAN link (s after deploy create);
	// WANBusy: the mean rate in between ÷ the link rate.
	WANFirst float64 `json:"wan_first_s"`
	WANLast  float64 `json:"wan_last_s"`
	WANBusy  float64 `json:"wan_busy"`
}

type wanSample struct {
	at time.Time
	in []int64
}

// readRx reads the router end of each site's WAN link, bytes received.
func readRx(tp *topology, sites int) []int64 {
	out := make([]int64, sites)
	for k := 1; k <= sites; k++ {
		cmd := exec.Command("ip", "-n", tp.routers[k-1], "-s", "-j", "link", "show", "dev", routerWANDev)
		raw, err := cmd.Output()
		if err != nil {
			continue
		}
		var links []struct {
			Stats struct {
				RX struct {
					Bytes int64 `json:"bytes"`
				} `json:"rx"`
			} `json:"stats64"`
		}
		if json.Unmarshal(raw, &links) == nil && len(links) == 1 {
			out[k-1] = links[0].Stats.RX.Bytes
		}
	}
	return out
}

// wanActivity finds, over the sites, the latest time 1% and 99% of S had
// crossed a site's WAN link, and the busiest site's mean rate between.
func wanActivity(ss []wanSample, start time.Time, rate float64, S int64) (first, last, busy float64) {
	if len(ss) < 2 {
		return 0, 0, 0
	}
	base := ss[0].in
	for k := range base {
		var t1, t99 float64
		for _, s := range ss {
			got := s.in[k] - base[k]
			if t1 == 0 && got >= S/100 {
				t1 = s.at.Sub(start).Seconds()
			}
			if t99 == 0 && got >= S*99/100 {
				t99 = s.at.Sub(start).Seconds()
			}
		}
		first, last = max(first, t1), max(last, t99)
		if t99 > t1 {
			busy = max(busy, 0.98*float64(S)/rate/(t99-t1))
		}
	}
	return first, last, busy
}

func benchTable(rs []benchResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %-6s %7s %6s | %-17s %6s | %-17s %6s | %6s | %-11s %-9s %7s | %-15s | %7s | %-11s\n",
		"run", "K×M", "S MiB", "T* s", "DOWNLOADED med/last", "×T*", "SUCCESS med/last", "×T*", "admin", "WAN in ÷S", "out ÷S", "coord÷S", "WAN 1%/99% busy", "CPU s", "RSS MiB med/max")
	for _, r := range rs {
		fmt.Fprintf(&b, "%-10s %-6s %7.1f %6.2f | %7.2f / %7.2f %6.2f | %7.2f / %7.2f %6.2f | %6.1f | %5.3f–%5.3f %9.3f %7.3f | %4.1f/%5.1f %3.0f%% | %7.1f | %5.0f / %4.0f\n",
			r.Label, fmt.Sprintf("%d×%d", r.Sites, r.Nodes), float64(r.Bytes)/(1<<20), r.TStar,
			r.DLMedian, r.DLLast, r.DLLast/r.TStar, r.OKMedian, r.OKLast, r.OKLast/r.TStar, r.AdminDone,
			minOf(r.WANIn), maxOf(r.WANIn), maxOf(r.WANOut), r.CoordEgress, r.WANFirst, r.WANLast, 100*r.WANBusy, r.CPUSeconds, r.NodeRSSMedianMiB, r.NodeRSSMaxMiB)
	}
	return b.String()
}

func fmtRatios(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 4, 64)
	}
	return strings.Join(s, " ")
}

func appendResult(t *testing.T, path string, r benchResult) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(append(b, '\n')); err != nil {
		t.Fatal(err)
	}
}

func readResults(t *testing.T, path string) []benchResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []benchResult
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r benchResult
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func last(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Max(v)
}

func minOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Min(v)
}

func maxOf(v []float64) float64 { return last(v) }
