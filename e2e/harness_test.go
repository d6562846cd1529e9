// Package e2e runs relaymesh as real processes on loopback: one coordinator
// and several node daemons, driven through the relaymesh CLI.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/internal/poll"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binary builds relaymesh once per test run.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relaymesh-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "relaymesh")
		cmd := exec.Command("go", "build", "-race", "-o", binPath, ".")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a relaymesh daemon started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// cluster is the processes and directories of one test.
type cluster struct {
	t     *testing.T
	bin   string
	root  string
	coord string // coordinator dir
	mu    sync.Mutex
	procs map[string]*proc
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: binary(t), root: t.TempDir(), procs: map[string]*proc{}}
	c.coord = filepath.Join(c.root, "coordinator")
	t.Cleanup(c.stopAll)
	return c
}

// run runs the CLI to completion and returns stdout; it fails the test on
// a non-zero exit.
func (c *cluster) run(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.try(args...)
	if err != nil {
		c.t.Fatalf("relaymesh %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// try runs the CLI and returns stdout, stderr and the exit error.
func (c *cluster) try(args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	cmd.Env = append(os.Environ(), "RELAYMESH_QUIET=true")
	err := cmd.Run()
	return so.String(), se.String(), err
}

// start starts a daemon whose output goes to ROOT/NAME.log.
func (c *cluster) start(name string, args ...string) *proc {
	c.t.Helper()
	logPath := filepath.Join(c.root, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		c.t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs[name] = p
	c.mu.Unlock()
	return p
}

// stop sends SIGTERM and waits; kill sends SIGKILL to the process group.
func (c *cluster) stop(name string) {
	c.t.Helper()
	c.signal(name, syscall.SIGTERM)
}

func (c *cluster) kill(name string) {
	c.t.Helper()
	c.signal(name, syscall.SIGKILL)
}

func (c *cluster) signal(name string, sig syscall.Signal) {
	c.mu.Lock()
	p := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		c.t.Errorf("%s did not stop within 30s of %v", name, sig)
	}
	if sig == syscall.SIGTERM && p.err != nil {
		c.t.Errorf("%s exited with %v after SIGTERM; log:\n%s", name, p.err, tail(p.log))
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	names := make([]string, 0, len(c.procs))
	for n := range c.procs {
		names = append(names, n)
	}
	c.mu.Unlock()
	for _, n := range names {
		c.stop(n)
	}
	if c.t.Failed() {
		logs, _ := filepath.Glob(filepath.Join(c.root, "*.log"))
		for _, l := range logs {
			c.t.Logf("---- %s\n%s", filepath.Base(l), tail(l))
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// eventually polls cond every 100ms until it is true or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Until(t, timeout, 100*time.Millisecond, what, cond)
}

// startCoordinator initialises and starts the coordinator and waits for
// its admin API.
func (c *cluster) startCoordinator(extra ...string) {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.coord, "order.key")); err != nil {
		c.run("coordinator", "init", "--dir", c.coord)
	}
	os.Remove(filepath.Join(c.coord, "admin.addr"))
	args := append([]string{"coordinator", "serve", "--dir", c.coord,
		"--listen", "/ip4/127.0.0.1/tcp/0", "--admin-addr", "127.0.0.1:0"}, extra...)
	c.start("coordinator", args...)
	eventually(c.t, 60*time.Second, "coordinator admin API", func() (bool, string) {
		_, _, err := c.try("nodes", "list", "--coordinator-dir", c.coord)
		return err == nil, fmt.Sprint(err)
	})
}

func (c *cluster) coordAddr() string {
	b, err := os.ReadFile(filepath.Join(c.coord, "p2p.addrs"))
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0]
}

func (c *cluster) admin(args ...string) string {
	c.t.Helper()
	return c.run(append(args, "--coordinator-dir", c.coord)...)
}

// waitAlive waits until the coordinator lists n nodes alive.
func (c *cluster) waitAlive(n int) {
	c.t.Helper()
	eventually(c.t, 60*time.Second, fmt.Sprintf("%d nodes alive", n), func() (bool, string) {
		var ns []coordinator.NodeView
		c.adminJSON(&ns, "nodes", "list")
		alive := 0
		for _, v := range ns {
			if v.Alive {
				alive++
			}
		}
		return alive == n, fmt.Sprintf("%d alive", alive)
	})
}

func (c *cluster) adminJSON(v any, args ...string) {
	c.t.Helper()
	out := c.admin(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("relaymesh %v --json: %v\n%s", args, err, out)
	}
}
