//go:build netns && linux

// Package netns runs relaymesh as real processes, each in its own Linux
// network namespace, over a network built from bridges and veth pairs in
// which every site's WAN link is a veth pair shaped with tc tbf in both
// directions. It deploys a random package to every node and checks, with
// the kernel's own byte counters of each WAN link, that the package
// crossed each site's WAN link about once.
//
// It needs root and iproute2 (ip, tc). Run it with `make e2e-netns` (which
// also cleans up after a killed run) or
//
//	go test -tags netns -count=1 -v ./e2e/netns/
//
// Knobs (environment): RELAYMESH_NETNS_SITES (2), RELAYMESH_NETNS_NODES
// nodes per site (4), RELAYMESH_NETNS_MIB package size in MiB (8),
// RELAYMESH_NETNS_RATE WAN rate each way as tc writes it (20mbit),
// RELAYMESH_NETNS_MAX_RATIO the bound on WAN bytes in per site ÷ package
// size (1.3), RELAYMESH_NETNS_PREFIX the namespace name prefix (default
// rm-<random>; make e2e-netns passes its own so its trap can clean up),
// RELAYMESH_BIN a prebuilt relaymesh binary (default: go build).
//
// Topology (k = 1..sites, i = 1..nodes):
//
//	P-coord 10.200.0.1 ──veth── br0 in P-wan ──veth (WAN link k, tbf both ends)── P-r<k> wan0 10.200.0.<10+k>
//	                                                                                 P-r<k> br0 10.200.<k>.1
//	                                                     P-s<k>n<i> eth0 10.200.<k>.<10+i> ──veth── br0 in P-r<k>
//
// Only the site routers forward (net.ipv4.ip_forward=1 in their own
// namespace); nothing is added to or changed in the host's namespace.
package netns

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/relaymesh/relaymesh/internal/poll"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// params are the knobs of one run.
type params struct {
	sites, nodes int
	mib          int
	rate         string
	maxRatio     float64
	prefix       string
	// coordRate shapes the coordinator's uplink and portRate every node's
	// port both ways (tc rate syntax); "" leaves them unshaped.
	coordRate, portRate string
	// nat puts every site behind its router's masquerade (nftables): the
	// WAN sees one address per site and cannot open connections into it.
	nat bool
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func loadParams(t *testing.T) params {
	p := params{
		sites:    envInt(t, "RELAYMESH_NETNS_SITES", 2),
		nodes:    envInt(t, "RELAYMESH_NETNS_NODES", 4),
		mib:      envInt(t, "RELAYMESH_NETNS_MIB", 8),
		rate:     os.Getenv("RELAYMESH_NETNS_RATE"),
		maxRatio: 1.3,
		prefix:   os.Getenv("RELAYMESH_NETNS_PREFIX"),
	}
	if p.rate == "" {
		p.rate = "20mbit"
	}
	if v := os.Getenv("RELAYMESH_NETNS_MAX_RATIO"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			t.Fatalf("RELAYMESH_NETNS_MAX_RATIO=%q: want a positive number", v)
		}
		p.maxRatio = f
	}
	if p.sites > 50 || p.nodes > 200 {
		t.Fatalf("at most 50 sites and 200 nodes per site (addresses are 10.200.<site>.<10+node>)")
	}
	if p.prefix == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		p.prefix = "rm-" + hex.EncodeToString(b[:])
	}
	return p
}

// prerequisites says why this machine cannot run the test, or "".
func prerequisites() string {
	if os.Geteuid() != 0 {
		return fmt.Sprintf("not root (euid %d): network namespaces, veths and tc need root", os.Geteuid())
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found in PATH (apt-get install -y iproute2)"
		}
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Sprintf("`ip netns list` fails: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// ---------------------------------------------------------------- network

// network is the namespaces of one run; it deletes them on Cleanup.
type network struct {
	t      *testing.T
	prefix string
	mu     sync.Mutex
	ns     []string // created, in order
	// neigh holds the kernel's neighbour table limits as they were before
	// raiseNeighbourLimits, restored by destroy.
	neigh map[string]string
}

// The kernel's ARP table is one for all network namespaces, capped by
// net.ipv4.neigh.default.gc_thresh3 (1024 by default): past it, "neighbour
// table overflow" drops packets to hosts without an entry. Here every host
// shares this machine's kernel, so a fleet whose members all talk to each
// other (gossip probes every member) fills it: 4 sites × 16 nodes need
// 64 × 16 = 1,024 entries, and the 63rd or 64th node's enrollment timed
// out at the TCP connect while a plain connect got through. On a real LAN
// each host has its own table (a site beyond about a thousand hosts on
// one segment needs gc_thresh raised there too; see the README).
var neighKeys = []string{"gc_thresh1", "gc_thresh2", "gc_thresh3"}

// raiseNeighbourLimits makes the shared table hold at least entries.
func (n *network) raiseNeighbourLimits(entries int) {
	n.t.Helper()
	path := func(k string) string { return "/proc/sys/net/ipv4/neigh/default/" + k }
	b, err := os.ReadFile(path("gc_thresh3"))
	if err != nil {
		n.t.Fatalf("read gc_thresh3: %v", err)
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	want := 2 * entries
	if cur >= want || os.Getenv("RELAYMESH_NETNS_NEIGH") == "keep" { // keep: to show the fault
		return
	}
	n.neigh = map[string]string{}
	for _, k := range neighKeys {
		old, err := os.ReadFile(path(k))
		if err != nil {
			n.t.Fatalf("read %s: %v", k, err)
		}
		n.neigh[k] = strings.TrimSpace(string(old))
	}
	vals := map[string]int{"gc_thresh1": want / 2, "gc_thresh2": want, "gc_thresh3": 2 * want}
	for _, k := range neighKeys {
		if err := os.WriteFile(path(k), []byte(strconv.Itoa(vals[k])), 0o644); err != nil {
			n.t.Fatalf("raise %s to %d: %v", k, vals[k], err)
		}
	}
	n.t.Logf("neighbour table limits raised to %v for %d entries (were %v; restored at cleanup)", vals, entries, n.neigh)
}

func (n *network) restoreNeighbourLimits() {
	for _, k := range neighKeys {
		if v, ok := n.neigh[k]; ok {
			if err := os.WriteFile("/proc/sys/net/ipv4/neigh/default/"+k, []byte(v), 0o644); err != nil {
				n.t.Logf("cleanup: restore %s=%s: %v", k, v, err)
			}
		}
	}
	n.neigh = nil
}

func (n *network) name(suffix string) string { return n.prefix + "-" + suffix }

// sh runs a command to completion and fails the test on error.
func (n *network) sh(args ...string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		n.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs a command inside namespace ns.
func (n *network) in(ns string, args ...string) string {
	n.t.Helper()
	return n.sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// ipn runs `ip -n ns ...`.
func (n *network) ipn(ns string, args ...string) {
	n.t.Helper()
	n.sh(append([]string{"ip", "-n", ns}, args...)...)
}

// add creates a namespace with its loopback up.
func (n *network) add(suffix string) string {
	n.t.Helper()
	ns := n.name(suffix)
	n.sh("ip", "netns", "add", ns)
	n.mu.Lock()
	n.ns = append(n.ns, ns)
	n.mu.Unlock()
	n.ipn(ns, "link", "set", "lo", "up")
	return ns
}

// veth creates a veth pair straight inside two namespaces (never in the
// host's), so names only have to be unique within each namespace.
func (n *network) veth(nsA, devA, nsB, devB string) {
	n.t.Helper()
	n.ipn(nsA, "link", "add", devA, "type", "veth", "peer", "name", devB, "netns", nsB)
}

func (n *network) bridge(ns, dev string) {
	n.t.Helper()
	n.ipn(ns, "link", "add", dev, "type", "bridge")
	n.ipn(ns, "link", "set", dev, "up")
}

// port attaches dev to bridge br and brings it up.
func (n *network) port(ns, dev, br string) {
	n.t.Helper()
	n.ipn(ns, "link", "set", dev, "master", br)
	n.ipn(ns, "link", "set", dev, "up")
}

func (n *network) addr(ns, dev, cidr string) {
	n.t.Helper()
	n.ipn(ns, "addr", "add", cidr, "dev", dev)
	n.ipn(ns, "link", "set", dev, "up")
}

// shape puts a tbf on dev's egress: rate, a 400 ms queue.
//
// The bucket holds 4 ms of the rate, at least 32 kbit: tbf needs a burst of
// at least rate/HZ to reach its rate (HZ is 250 on Debian's kernels), and
// a smaller one made the links run below their rate.
func (n *network) shape(ns, dev, rate string) {
	n.t.Helper()
	bps, err := rateBits(rate)
	if err != nil {
		n.t.Fatal(err)
	}
	burst := max(int64(32_000), bps/250)
	n.in(ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf", "rate", rate, "burst", strconv.FormatInt(burst/8, 10), "latency", "400ms")
}

// rateBits parses a tc rate such as 20mbit, 200Mbit, 1gbit, 500kbit.
func rateBits(s string) (int64, error) {
	l := strings.ToLower(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}} {
		if num, ok := strings.CutSuffix(l, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f <= 0 {
				break
			}
			return int64(f * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("rate %q: want a tc rate such as 20mbit", s)
}

// counters reads a link's byte counters from the kernel.
func (n *network) counters(ns, dev string) (rx, tx int64) {
	n.t.Helper()
	var links []struct {
		Stats struct {
			RX struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	out := n.sh("ip", "-n", ns, "-s", "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		n.t.Fatalf("ip -s -j link show %s in %s: %v\n%s", dev, ns, err, out)
	}
	return links[0].Stats.RX.Bytes, links[0].Stats.TX.Bytes
}

// tbf reads the bytes sent through, and the overlimits of, the tbf qdisc
// at the root of dev.
func (n *network) tbf(ns, dev string) (bytes, overlimits int64) {
	n.t.Helper()
	var qs []struct {
		Kind       string `json:"kind"`
		Root       bool   `json:"root"`
		Bytes      int64  `json:"bytes"`
		Overlimits int64  `json:"overlimits"`
	}
	out := n.in(ns, "tc", "-s", "-j", "qdisc", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		n.t.Fatalf("tc -s -j qdisc show dev %s in %s: %v\n%s", dev, ns, err, out)
	}
	for _, q := range qs {
		if q.Kind == "tbf" && q.Root {
			return q.Bytes, q.Overlimits
		}
	}
	n.t.Fatalf("no root tbf on %s in %s: %s", dev, ns, out)
	return 0, 0
}

// destroy kills whatever still runs in our namespaces and deletes them.
// It never fails the test: it is cleanup.
func (n *network) destroy() {
	n.mu.Lock()
	nss := append([]string(nil), n.ns...)
	n.ns = nil
	n.mu.Unlock()
	for i := len(nss) - 1; i >= 0; i-- {
		ns := nss[i]
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			n.t.Logf("cleanup: ip netns del %s: %v %s", ns, err, out)
		}
	}
	n.t.Logf("cleanup: deleted %d namespaces %s-*", len(nss), n.prefix)
	n.restoreNeighbourLimits()
}

// topology is the addressing of one run.
type topology struct {
	wan, coord string
	coordIP    string
	routers    []string   // per site
	nodes      [][]string // per site, namespace of each node
	nodeIPs    [][]string
}

func siteName(k int) string    { return fmt.Sprintf("site%d", k) }
func nodeName(k, i int) string { return fmt.Sprintf("s%dn%d", k, i) }
func routerWANIP(k int) string { return fmt.Sprintf("10.200.0.%d", 10+k) }
func siteNet(k int) string     { return fmt.Sprintf("10.200.%d.0/24", k) }
func nodeIP(k, i int) string   { return fmt.Sprintf("10.200.%d.%d", k, 10+i) }
func wanPeerDev(k int) string  { return fmt.Sprintf("site%d", k) } // WAN link k, wan namespace end
const routerWANDev = "wan0"    // WAN link k, router end

// build creates the namespaces, links, addresses, routes and shaping.
func (n *network) build(p params) *topology {
	n.t.Helper()
	tp := &topology{coordIP: "10.200.0.1"}
	// Each node: its site's members and router; each router: its nodes,
	// the other routers and the coordinator.
	n.raiseNeighbourLimits(p.sites*p.nodes*p.nodes + p.sites*(p.nodes+p.sites+1))
	tp.wan = n.add("wan")
	n.bridge(tp.wan, "br0")

	tp.coord = n.add("coord")
	n.veth(tp.coord, "eth0", tp.wan, "coord")
	n.port(tp.wan, "coord", "br0")
	n.addr(tp.coord, "eth0", tp.coordIP+"/24")
	if p.coordRate != "" {
		n.shape(tp.coord, "eth0", p.coordRate)
	}

	for k := 1; k <= p.sites; k++ {
		r := n.add(fmt.Sprintf("r%d", k))
		tp.routers = append(tp.routers, r)
		// The WAN link: router wan0 <-> wan namespace site<k>, shaped both ways.
		n.veth(r, routerWANDev, tp.wan, wanPeerDev(k))
		n.port(tp.wan, wanPeerDev(k), "br0")
		n.addr(r, routerWANDev, routerWANIP(k)+"/24")
		n.shape(r, routerWANDev, p.rate)       // site -> WAN (upload)
		n.shape(tp.wan, wanPeerDev(k), p.rate) // WAN -> site (download)
		// The site LAN.
		n.bridge(r, "br0")
		n.addr(r, "br0", fmt.Sprintf("10.200.%d.1/24", k))
		n.in(r, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
		if p.nat {
			n.in(r, "nft", "add table ip nat")
			n.in(r, "nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }")
			n.in(r, "nft", "add rule ip nat post oifname "+routerWANDev+" ip saddr "+siteNet(k)+" masquerade")
		} else {
			n.ipn(tp.coord, "route", "add", siteNet(k), "via", routerWANIP(k))
		}

		var nss, ips []string
		for i := 1; i <= p.nodes; i++ {
			ns := n.add(nodeName(k, i))
			dev := fmt.Sprintf("n%d", i)
			n.veth(ns, "eth0", r, dev)
			n.port(r, dev, "br0")
			n.addr(ns, "eth0", nodeIP(k, i)+"/24")
			n.ipn(ns, "route", "add", "default", "via", fmt.Sprintf("10.200.%d.1", k))
			if p.portRate != "" {
				n.shape(ns, "eth0", p.portRate) // the node's upload
				n.shape(r, dev, p.portRate)     // its download
			}
			nss = append(nss, ns)
			ips = append(ips, nodeIP(k, i))
		}
		tp.nodes = append(tp.nodes, nss)
		tp.nodeIPs = append(tp.nodeIPs, ips)
	}
	// Sites can reach each other through the WAN (a relay may pull from
	// another site's relay).
	for k := 1; k <= p.sites; k++ {
		for j := 1; j <= p.sites; j++ {
			if j != k && !p.nat {
				n.ipn(tp.routers[k-1], "route", "add", siteNet(j), "via", routerWANIP(j))
			}
		}
	}
	return tp
}

// ---------------------------------------------------------------- processes

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if b := os.Getenv("RELAYMESH_BIN"); b != "" {
			binPath, binErr = filepath.Abs(b)
			return
		}
		dir, err := os.MkdirTemp("", "relaymesh-netns-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "relaymesh")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// fleet runs relaymesh processes inside the namespaces.
type fleet struct {
	t     *testing.T
	net   *network
	bin   string
	root  string
	coord string // coordinator dir
	cns   string // coordinator namespace
	mu    sync.Mutex
	procs []*proc
}

// cli runs `relaymesh args...` inside ns and returns stdout.
func (f *fleet) cli(ns string, args ...string) string {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, err := f.try(ctx, ns, args...)
	if err != nil {
		holdOnFailure(f.t, fmt.Sprintf("relaymesh %s in %s failed", strings.Join(args, " "), ns))
		f.t.Fatalf("[%s] relaymesh %s: %v\nstdout: %s\nstderr: %s", ns, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func (f *fleet) try(ctx context.Context, ns string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, f.bin}, args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.Env = append(os.Environ(), "RELAYMESH_QUIET=true")
	err := cmd.Run()
	return so.String(), se.String(), err
}

// admin runs an admin command in the coordinator's namespace (its admin
// API listens on that namespace's loopback).
func (f *fleet) admin(args ...string) string {
	f.t.Helper()
	return f.cli(f.cns, append(args, "--coordinator-dir", f.coord)...)
}

func (f *fleet) adminJSON(v any, args ...string) {
	f.t.Helper()
	out := f.admin(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		f.t.Fatalf("relaymesh %v --json: %v\n%s", args, err, out)
	}
}

// start runs a daemon in ns; `ip netns exec` execs the binary, so the
// process group we start is the daemon's.
func (f *fleet) start(ns, name string, args ...string) {
	f.t.Helper()
	logPath := filepath.Join(f.root, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, f.bin}, args...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		f.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
}

// stopAll stops every daemon: SIGTERM, then SIGKILL after 10 s.
func (f *fleet) stopAll() {
	f.mu.Lock()
	ps := f.procs
	f.procs = nil
	f.mu.Unlock()
	for _, p := range ps {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	deadline := time.After(10 * time.Second)
	for _, p := range ps {
		select {
		case <-p.done:
		case <-deadline:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			f.t.Logf("cleanup: %s did not stop within 10s of SIGTERM; killed", p.name)
		}
	}
	if f.t.Failed() {
		for _, p := range ps {
			f.t.Logf("---- %s.log\n%s", p.name, tail(p.log))
		}
	}
}

// killAll SIGKILLs every daemon's process group and reaps them.
func (f *fleet) killAll() {
	f.mu.Lock()
	ps := f.procs
	f.procs = nil
	f.mu.Unlock()
	for _, p := range ps {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range ps {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// cleanupOnSignal makes SIGINT and SIGTERM (Ctrl-C, a CI runner giving up)
// kill the daemons and delete the namespaces before the test binary exits,
// since Cleanup functions do not run then.
func cleanupOnSignal(t *testing.T, f *fleet, n *network) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			fmt.Fprintf(os.Stderr, "e2e-netns: %v: killing the daemons and deleting namespaces %s-*\n", sig, n.prefix)
			f.killAll()
			n.destroy()
			_ = os.RemoveAll(f.root)
			os.Exit(130)
		case <-done:
		}
	}()
	t.Cleanup(func() {
		signal.Stop(ch)
		close(done)
	})
}

// holdOnFailure keeps the namespaces and daemons of a failed run for
// RELAYMESH_NETNS_HOLD (a duration, e.g. 10m) so they can be inspected
// with ip netns exec; unset, it returns at once.
func holdOnFailure(t *testing.T, what string) {
	d, err := time.ParseDuration(os.Getenv("RELAYMESH_NETNS_HOLD"))
	if err != nil || d <= 0 {
		return
	}
	t.Logf("%s: holding the network for %s (RELAYMESH_NETNS_HOLD)", what, d)
	fmt.Fprintf(os.Stderr, "e2e-netns: HOLD %s: %s\n", d, what)
	time.Sleep(d)
}

// setUp builds p's network and a fleet to run in it, both torn down at
// Cleanup (last registered first: processes stop, then the namespaces go,
// which removes every bridge and veth in them) or on SIGINT/SIGTERM.
func setUp(t *testing.T, p params, bin string) (*network, *fleet, *topology) {
	t.Helper()
	net := &network{t: t, prefix: p.prefix}
	t.Cleanup(net.destroy)
	root := t.TempDir()
	f := &fleet{t: t, net: net, bin: bin, root: root, coord: filepath.Join(root, "coordinator")}
	t.Cleanup(f.stopAll)
	cleanupOnSignal(t, f, net)
	tp := net.build(p)
	f.cns = tp.coord
	return net, f, tp
}

// tail returns the last 25 lines of a log.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return strings.Join(lines, "\n")
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, timeout, 250*time.Millisecond, what, cond)
}

// writeRandomPackage writes a tar.gz holding run.sh and size random
// (incompressible) bytes, and returns the archive's size.
func writeRandomPackage(t *testing.T, path string, size int) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	script := "#!/bin/sh\nset -e\ntest \"$(wc -c < payload.bin)\" -eq " + strconv.Itoa(size) + "\necho \"installed on $RELAYMESH_NODE_NAME\"\n"
	files := []struct {
		name string
		r    io.Reader
		n    int64
	}{
		{"run.sh", strings.NewReader(script), int64(len(script))},
		{"payload.bin", io.LimitReader(rand.Reader, int64(size)), int64(size)},
	}
	for _, e := range files {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o755, Size: e.n, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, e.r); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// nodeConfig sets only timers (fast, for a test) and a harmless reboot
// command: listen and gossip stay on their defaults, every interface at
// ports 4711 and 4712, as an admin's node has them. Before those defaults
// a node listened on loopback and its site peers could not reach it.
const nodeConfig = `sync_interval: 1s
call_timeout: 10s
status_backoff_min: 100ms
status_backoff_max: 2s
job_backoff_min: 100ms
job_backoff_max: 2s
reboot_command: ["true"]
fast_gossip: true
`

// ---------------------------------------------------------------- the test

// misadvertised is the node of TestWANBytesPerSite (with 3 or more nodes a
// site) enrolled with an --advertise address that does not exist.
const misadvertised = "s1n3"

// TestWANBytesPerSite builds SITES sites of NODES nodes behind tbf-shaped
// WAN links, deploys a random package of MIB MiB to every node and checks
// every node's SUCCESS and each site's WAN bytes in ≤ MAX_RATIO × size.
func TestWANBytesPerSite(t *testing.T) {
	if why := prerequisites(); why != "" {
		t.Skip("e2e-netns skipped: " + why)
	}
	p := loadParams(t)
	bin := binary(t)
	t.Logf("prefix %s: %d sites × %d nodes, %d MiB package, WAN %s each way (tbf), bound %.2f × size",
		p.prefix, p.sites, p.nodes, p.mib, p.rate, p.maxRatio)

	net, f, tp := setUp(t, p, bin)
	root := f.root

	// Coordinator.
	f.cli(tp.coord, "coordinator", "init", "--dir", f.coord)
	f.start(tp.coord, "coordinator", "coordinator", "serve", "--dir", f.coord,
		"--listen", "/ip4/"+tp.coordIP+"/tcp/7471", "--admin-addr", "127.0.0.1:0")
	coordAddr := waitCoordinator(t, f, tp)

	// Nodes: enroll and start them site by site.
	total := p.sites * p.nodes
	for k := 1; k <= p.sites; k++ {
		tok := strings.TrimSpace(f.admin("token", "create", "--site", siteName(k), "--uses", strconv.Itoa(p.nodes)))
		for i := 1; i <= p.nodes; i++ {
			ns, name := tp.nodes[k-1][i-1], nodeName(k, i)
			dir := filepath.Join(root, name)
			args := []string{"node", "enroll", "--coordinator", coordAddr, "--token", tok, "--dir", dir, "--name", name}
			cfg := nodeConfig
			if name == misadvertised {
				// Its peers cannot reach it there: the fleet must say so.
				args = append(args, "--advertise", "/ip4/10.200.1.250/tcp/4711")
				cfg += "not_relay: true\n"
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			f.cli(ns, args...)
			f.start(ns, name, "node", "run", "--dir", dir)
		}
	}
	waitFleet(t, f, total, p.sites, 90*time.Second)

	// The node that advertises an address nobody can reach is named, by
	// the coordinator and in its own log.
	if p.nodes >= 3 {
		eventually(t, 60*time.Second, misadvertised+" reported unreachable", func() (bool, string) {
			var n coordinator.NodeView
			f.adminJSON(&n, "nodes", "show", misadvertised)
			var sites []coordinator.SiteView
			f.adminJSON(&sites, "sites", "list")
			warned := strings.Contains(f.admin("sites", "list"), "peers cannot connect to "+misadvertised)
			b, _ := os.ReadFile(filepath.Join(root, misadvertised+".log"))
			logged := strings.Contains(string(b), "site peers cannot connect to this node")
			return len(n.UnreachableBy) > 0 && warned && logged, fmt.Sprintf("unreachable_by %v, sites list warns %v, its log warns %v", n.UnreachableBy, warned, logged)
		})
		var others []coordinator.NodeView
		f.adminJSON(&others, "nodes", "list")
		for _, n := range others {
			if n.Name != misadvertised && len(n.UnreachableBy) > 0 {
				t.Errorf("%s is reported unreachable by %v; only %s advertises a wrong address", n.Name, n.UnreachableBy, misadvertised)
			}
		}
	}

	// The package.
	size := p.mib << 20
	arch := filepath.Join(root, "payload.tar.gz")
	S := writeRandomPackage(t, arch, size)
	pkg := strings.TrimSpace(f.admin("package", "build", arch, "--name", "netns-payload", "--version", "1",
		"--action", "launch", "--command", "sh run.sh",
		"--store", filepath.Join(root, "store"), "--out", filepath.Join(root, "payload.manifest.json")))
	t.Logf("package %s: archive %d bytes", pkg, S)

	// rx, tx: the router end of the WAN link; tbf, over: the tbf qdisc
	// that shapes the site's download (the WAN end's egress).
	type ctr struct{ rx, tx, tbf, over int64 }
	read := func() (sites []ctr, coord ctr) {
		for k := 1; k <= p.sites; k++ {
			rx, tx := net.counters(tp.routers[k-1], routerWANDev)
			b, o := net.tbf(tp.wan, wanPeerDev(k))
			sites = append(sites, ctr{rx, tx, b, o})
		}
		rx, tx := net.counters(tp.coord, "eth0")
		return sites, ctr{rx: rx, tx: tx}
	}
	// quiet waits until the WAN links carry only heartbeats (under 64 KiB
	// between two reads), so a reading is not taken in a burst.
	quiet := func(what string) {
		prev := int64(-1)
		eventually(t, 30*time.Second, "WAN links quiet "+what, func() (bool, string) {
			sites, coord := read()
			total := coord.tx
			for _, s := range sites {
				total += s.rx
			}
			moved := total - prev
			ok := prev >= 0 && moved < 64<<10
			prev = total
			return ok, fmt.Sprintf("%d bytes since the last read", moved)
		})
	}
	quiet("before the deployment")
	var sitesBefore []coordinator.SiteView
	f.adminJSON(&sitesBefore, "sites", "list")
	before, coordBefore := read()
	start := time.Now()

	var d coordinator.DeploymentView
	f.adminJSON(&d, "deploy", "create", pkg, "--all")
	id := d.ID
	eventually(t, 3*time.Minute, "deployment "+id+" done", func() (bool, string) {
		d = coordinator.DeploymentView{}
		f.adminJSON(&d, "deploy", "show", id)
		return d.Done, fmt.Sprintf("%s %v", d.State, d.Counts)
	})
	elapsed := time.Since(start)
	quiet("after the deployment")
	after, coordAfter := read()
	var sitesAfter []coordinator.SiteView
	f.adminJSON(&sitesAfter, "sites", "list")

	// WAN bytes per site, from the kernel's counters of the WAN link.
	reported := func(vs []coordinator.SiteView) map[string]coordinator.SiteView {
		m := map[string]coordinator.SiteView{}
		for _, v := range vs {
			m[v.Site] = v
		}
		return m
	}
	rb, ra := reported(sitesBefore), reported(sitesAfter)
	// Problems are collected and reported after the table, so that the
	// table and the reasons sit together above the daemons' log tails.
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\npackage %d bytes (%.2f MiB), %d sites × %d nodes, WAN %s each way, deployment %s in %.1fs\n",
		S, float64(S)/(1<<20), p.sites, p.nodes, p.rate, d.State, elapsed.Seconds())
	fmt.Fprintf(&tbl, "%-8s %14s %9s %14s %9s %14s %14s %16s %s\n", "site", "WAN in (B)", "in/S", "WAN out (B)", "out/S", "tbf down (B)", "tbf overlimits", "node-reported in", "relays")
	for k := 1; k <= p.sites; k++ {
		in := after[k-1].rx - before[k-1].rx
		out := after[k-1].tx - before[k-1].tx
		ratio := float64(in) / float64(S)
		s := siteName(k)
		nodeIn := ra[s].WANIn - rb[s].WANIn
		shaped := after[k-1].tbf - before[k-1].tbf
		over := after[k-1].over - before[k-1].over
		fmt.Fprintf(&tbl, "%-8s %14d %9.4f %14d %9.4f %14d %14d %16d %v\n", s, in, ratio, out, float64(out)/float64(S), shaped, over, nodeIn, ra[s].Relays)
		if shaped < in*99/100 {
			fail("%s: the download tbf carried %d bytes of the %d that came in: traffic bypassed the shaped link", s, shaped, in)
		}
		if ratio > p.maxRatio {
			fail("%s: %d bytes in over its WAN link = %.4f × package size, want ≤ %.2f", s, in, ratio, p.maxRatio)
		}
		if ratio < 0.99 {
			fail("%s: only %d bytes in over its WAN link = %.4f × package size: did the package cross the shaped link at all?", s, in, ratio)
		}
	}
	ce := coordAfter.tx - coordBefore.tx
	fmt.Fprintf(&tbl, "%-8s %14s %9s %14d %9.4f   (coordinator egress)\n", "coord", "", "", ce, float64(ce)/float64(S))
	fmt.Fprintf(&tbl, "WAN in/out: kernel byte counters of each site router's end of its WAN veth (frames incl. Ethernet/IP/TCP headers), after − before the deployment.\n")
	fmt.Fprintf(&tbl, "node-reported in: the sites' own wan_in (payload bytes the nodes say they received from outside the site).\n")
	fmt.Fprintf(&tbl, "node states: %v\n", d.Counts)
	t.Log(tbl.String())

	// Every node SUCCESS.
	if d.State != coordinator.DeployCompleted || d.Counts[core.StateSuccess] != total {
		fail("deployment %s: %s %v, want %s with %d SUCCESS", d.ID, d.State, d.Counts, coordinator.DeployCompleted, total)
	}
	for _, r := range d.Nodes {
		if r.State != core.StateSuccess || r.ExitCode != 0 || !strings.Contains(r.Output, "installed on "+r.Name) {
			fail("%s: %s exit %d output %q", r.Name, r.State, r.ExitCode, r.Output)
		}
	}
	if len(d.Nodes) != total {
		fail("deployment has %d node rows, want %d", len(d.Nodes), total)
	}
	for _, pr := range problems {
		t.Error(pr)
	}
}
