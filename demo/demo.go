// Package demo runs a whole relaymesh fleet on this machine: a coordinator
// and several sites of node daemons as separate processes on loopback, a
// sample package built and deployed to all of them, the status filling up
// live, and what crossed each site's WAN link.
package demo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
)

// Config says how big a fleet to run.
type Config struct {
	Binary       string   // the relaymesh binary to start (os.Executable())
	Dir          string   // work directory; "" = a new temp dir, removed at the end
	Sites        []string // site names
	NodesPerSite int
	PackageSize  int64 // payload bytes in the sample package
	Out          io.Writer
	Live         bool // redraw the table in place (a terminal)
	Logger       *slog.Logger
}

// DefaultConfig is 3 sites × 4 nodes and an 8 MiB package.
func DefaultConfig(binary string, out io.Writer) Config {
	return Config{Binary: binary, Sites: []string{"paris", "lyon", "nantes"}, NodesPerSite: 4, PackageSize: 8 << 20, Out: out}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Binary == "":
		return errors.New("demo: Binary is empty")
	case len(c.Sites) == 0 || c.NodesPerSite < 1 || c.NodesPerSite > 50:
		return fmt.Errorf("demo: %d sites × %d nodes: want at least one site and 1-50 nodes per site", len(c.Sites), c.NodesPerSite)
	case c.PackageSize < 1 || c.PackageSize > 1<<30:
		return fmt.Errorf("demo: package size %d: want 1 byte to 1 GiB", c.PackageSize)
	}
	return nil
}

type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

type fleet struct {
	cfg   Config
	dir   string
	coord string
	mu    sync.Mutex
	procs []*proc
	cl    *coordinator.Client
}

// Run runs the demo until it is done or ctx ends, and stops everything it
// started.
func Run(ctx context.Context, cfg Config) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	f := &fleet{cfg: cfg, dir: cfg.Dir}
	if f.dir == "" {
		if f.dir, err = os.MkdirTemp("", "relaymesh-demo-"); err != nil {
			return err
		}
		defer os.RemoveAll(f.dir)
	}
	defer f.stopAll()
	f.coord = filepath.Join(f.dir, "coordinator")
	say := func(format string, a ...any) { fmt.Fprintf(cfg.Out, format+"\n", a...) }

	say("relaymesh demo: %d sites × %d nodes on loopback, work dir %s", len(cfg.Sites), cfg.NodesPerSite, f.dir)
	if _, err := coordinator.Init(f.coord); err != nil {
		return err
	}
	if err := f.start("coordinator", "coordinator", "serve", "--dir", f.coord, "--listen", "/ip4/127.0.0.1/tcp/0", "--admin-addr", "127.0.0.1:0"); err != nil {
		return err
	}
	if err := f.waitAdmin(ctx); err != nil {
		return err
	}
	say("coordinator up: admin API %s; web console %s/ while the demo runs (log in with %s)",
		f.cl.BaseURL, f.cl.BaseURL, filepath.Join(f.coord, coordinator.FileAdminToken))

	addrs, err := os.ReadFile(filepath.Join(f.coord, coordinator.FileP2PAddrs))
	if err != nil {
		return err
	}
	coordAddr := strings.SplitN(strings.TrimSpace(string(addrs)), "\n", 2)[0]
	total := 0
	for _, site := range cfg.Sites {
		tok, err := f.cl.CreateToken(ctx, coordinator.TokenRequest{Site: site, Uses: cfg.NodesPerSite, Expires: "1h"})
		if err != nil {
			return err
		}
		for i := range cfg.NodesPerSite {
			name := fmt.Sprintf("%s-%d", site, i+1)
			if err := f.enroll(ctx, name, coordAddr, tok.Token); err != nil {
				return err
			}
			total++
		}
	}
	say("%d nodes enrolled and running; waiting for each site to elect its relay...", total)
	if err := f.waitRelays(ctx, total); err != nil {
		return err
	}
	for _, s := range mustSites(ctx, f.cl) {
		say("  site %-8s %d members, relay %s", s.Site, s.Members, strings.Join(s.Relays, ", "))
	}

	pkgID, size, err := f.publish(ctx)
	if err != nil {
		return err
	}
	say("sample package %s published: %s", pkgID, human(size))
	before := wanIn(mustSites(ctx, f.cl))
	d, err := f.cl.CreateDeployment(ctx, coordinator.DeployRequest{Packages: []string{pkgID}, All: true, Expires: "1h"})
	if err != nil {
		return err
	}
	say("deployment %s signed (order sequence %d) and handed to the sites' relays\n", d.ID, d.Seq)
	final, err := f.watch(ctx, d.ID)
	if err != nil {
		return err
	}
	// The byte counters reach the coordinator with each node's heartbeat:
	// wait until every site has reported at least the package (or give up
	// after a few heartbeats and show what arrived).
	var after []coordinator.SiteView
	_ = poll(ctx, 10*time.Second, "the sites' byte counters", func() (bool, error) {
		after = mustSites(ctx, f.cl)
		for _, s := range after {
			if s.WANIn-before[s.Site] < size {
				return false, nil
			}
		}
		return true, nil
	})
	say("\nWAN traffic per site (bytes that entered the site from outside, for a %s package):", human(size))
	for _, s := range after {
		in := s.WANIn - before[s.Site]
		say("  %-8s %9s  = %.2f × package size", s.Site, human(in), float64(in)/float64(size))
	}
	stats, _ := f.cl.Stats(ctx)
	if stats != nil {
		say("  coordinator sent %s in all (%.2f × package size for %d sites)", human(stats.BytesSent), float64(stats.BytesSent)/float64(size), len(cfg.Sites))
	}
	say("\nresult: %s, %d of %d nodes SUCCESS", final.State, final.Counts[core.StateSuccess], final.Targets)
	if final.State != coordinator.DeployCompleted {
		return fmt.Errorf("demo: deployment ended %s: %v", final.State, final.Counts)
	}
	say("stopping the fleet...")
	return nil
}

func mustSites(ctx context.Context, cl *coordinator.Client) []coordinator.SiteView {
	s, _ := cl.Sites(ctx)
	return s
}

func wanIn(ss []coordinator.SiteView) map[string]int64 {
	m := map[string]int64{}
	for _, s := range ss {
		m[s.Site] = s.WANIn
	}
	return m
}

func (f *fleet) start(name string, args ...string) error {
	logf, err := os.Create(filepath.Join(f.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(f.cfg.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("demo: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	f.mu.Lock()
	f.procs = append(f.procs, p)
	f.mu.Unlock()
	return nil
}

// stopAll sends SIGTERM to every process (nodes first) and waits.
func (f *fleet) stopAll() {
	f.mu.Lock()
	procs := slices.Clone(f.procs)
	f.mu.Unlock()
	slices.Reverse(procs)
	for _, p := range procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range procs {
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

func (f *fleet) waitAdmin(ctx context.Context) error {
	return poll(ctx, 60*time.Second, "the coordinator's admin API", func() (bool, error) {
		u, tok, err := coordinator.AdminFromDir(f.coord)
		if err != nil {
			return false, nil
		}
		cl, err := coordinator.NewClient(u, tok, "")
		if err != nil {
			return false, err
		}
		if _, err := cl.Nodes(ctx); err != nil {
			return false, nil
		}
		f.cl = cl
		return true, nil
	})
}

const nodeConfig = `listen: ["/ip4/127.0.0.1/tcp/0"]
gossip_bind: "127.0.0.1"
gossip_port: 0
fast_gossip: true
sync_interval: 1s
status_backoff_min: 200ms
status_backoff_max: 5s
reboot_command: ["true"]
`

func (f *fleet) enroll(ctx context.Context, name, coordAddr, token string) error {
	dir := filepath.Join(f.dir, name)
	cmd := exec.CommandContext(ctx, f.cfg.Binary, "--log-level", "warn", "node", "enroll", "--coordinator", coordAddr, "--token", token, "--dir", dir, "--name", name)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("demo: enroll %s: %v: %s", name, err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(nodeConfig), 0o600); err != nil {
		return err
	}
	return f.start(name, "node", "run", "--dir", dir)
}

func (f *fleet) waitRelays(ctx context.Context, total int) error {
	return poll(ctx, 90*time.Second, "every site's relay", func() (bool, error) {
		ss, err := f.cl.Sites(ctx)
		if err != nil {
			return false, nil
		}
		alive := 0
		for _, s := range ss {
			if len(s.Relays) == 0 {
				return false, nil
			}
			alive += s.Alive
		}
		return alive == total, nil
	})
}

// publish builds the sample package in the coordinator through its API:
// fragments first, then the manifest.
func (f *fleet) publish(ctx context.Context) (string, int64, error) {
	var arch bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&arch, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	payload := make([]byte, f.cfg.PackageSize)
	rand.Read(payload)
	files := []struct {
		name string
		body []byte
	}{
		{"install.sh", []byte("#!/bin/sh\necho \"hello from $RELAYMESH_NODE_NAME: payload $(wc -c < payload) bytes verified and installed\"\n")},
		{"payload", payload},
	}
	for _, fl := range files {
		if err := tw.WriteHeader(&tar.Header{Name: fl.name, Mode: 0o755, Size: int64(len(fl.body)), Typeflag: tar.TypeReg}); err != nil {
			return "", 0, err
		}
		tw.Write(fl.body)
	}
	tw.Close()
	gz.Close()
	m := core.Manifest{Schema: core.ManifestSchema, Name: "demo-agent", Version: "1.0", OS: "any", Arch: "any",
		Action: core.ActionLaunch, Command: []string{"sh", "install.sh"}, Priority: 5}
	info, err := core.Chunk(bytes.NewReader(arch.Bytes()), core.DefaultFragmentSize, func(c cidT, data []byte) error {
		return f.cl.PutFragment(ctx, c, data)
	})
	if err != nil {
		return "", 0, err
	}
	m.Size, m.Digest, m.FragmentSize = info.Size, info.Digest, core.DefaultFragmentSize
	for _, c := range info.Fragments {
		m.Fragments = append(m.Fragments, c.String())
	}
	enc, err := m.Encode()
	if err != nil {
		return "", 0, err
	}
	rec, err := f.cl.Publish(ctx, enc)
	if err != nil {
		return "", 0, err
	}
	return rec.ID, m.Size, nil
}

func poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("demo: gave up waiting %s for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
