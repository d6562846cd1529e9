package e2e

import (
	"bufio"
	"context"
	enc "encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// floodResult counts how the coordinator answered the flood's streams.
type floodResult struct {
	streams  atomic.Int64 // opened
	reset    atomic.Int64 // reset by the coordinator (refused unread, or over a limit)
	answered atomic.Int64 // got a response frame: the coordinator read the request
	unopened atomic.Int64 // the stream could not be opened (refused in negotiation, over a stream limit)
	other    atomic.Int64 // failed otherwise (dial refused, deadline)
}

func (r *floodResult) String() string {
	return fmt.Sprintf("%d streams: %d reset, %d answered, %d not opened, %d other", r.streams.Load(), r.reset.Load(), r.answered.Load(), r.unopened.Load(), r.other.Load())
}

// flood dials coord with ids fresh libp2p identities, each opening per
// streams at once on protos in turn. Half the streams announce a 32 MiB
// frame and trickle a byte every 100 ms; the others send 16 MiB as fast
// as the coordinator takes it. It runs until ctx ends.
func flood(ctx context.Context, t testing.TB, coord string, ids, per int, protos []protocol.ID) *floodResult {
	t.Helper()
	ai, err := peer.AddrInfoFromString(coord)
	if err != nil {
		t.Fatal(err)
	}
	res := &floodResult{}
	var wg sync.WaitGroup
	for i := range ids {
		key, err := p2p.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		h, err := p2p.NewHost(p2p.HostConfig{ListenAddrs: []string{}, Identity: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = h.Close() })
		if err := h.Connect(ctx, *ai); err != nil {
			res.other.Add(int64(per))
			continue
		}
		for j := range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				floodStream(ctx, h, ai.ID, protos[(i+j)%len(protos)], j%2 == 0, res)
			}()
		}
	}
	go func() { <-ctx.Done(); wg.Wait() }()
	t.Cleanup(wg.Wait)
	return res
}

func floodStream(ctx context.Context, h interface {
	NewStream(context.Context, peer.ID, ...protocol.ID) (network.Stream, error)
}, to peer.ID, proto protocol.ID, trickle bool, res *floodResult) {
	s, err := h.NewStream(ctx, to, proto)
	if err != nil {
		res.unopened.Add(1)
		return
	}
	res.streams.Add(1)
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	answer := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := s.Read(b[:])
		answer <- err
	}()
	outcome := func(err error) {
		switch {
		case err == nil:
			res.answered.Add(1)
		case errors.Is(err, network.ErrReset) && ctx.Err() == nil:
			res.reset.Add(1)
		default:
			res.other.Add(1)
		}
	}
	if trickle {
		if _, err := s.Write(enc.AppendUvarint(nil, 32<<20)); err != nil {
			outcome(<-answer)
			return
		}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case err := <-answer:
				outcome(err)
				return
			case <-tick.C:
				if _, err := s.Write([]byte{'x'}); err != nil {
					outcome(<-answer)
					return
				}
			case <-ctx.Done():
				res.other.Add(1)
				return
			}
		}
	}
	buf := enc.AppendUvarint(nil, 16<<20)
	chunk := make([]byte, 64<<10)
	for sent := 0; sent < 16<<20; sent += len(chunk) {
		if _, err := s.Write(buf); err != nil {
			break
		}
		buf = chunk
	}
	outcome(<-answer)
}

// vm reads VmRSS and VmHWM of pid, in KiB.
func vm(t testing.TB, pid int) (rss, hwm int64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

// floodCluster is a coordinator with two enrolled nodes and a package to
// deploy to them.
func floodCluster(t *testing.T, bin string) (*cluster, string) {
	c := newCluster(t)
	if bin != "" {
		c.bin = bin
	}
	c.startCoordinator()
	tok := strings.TrimSpace(c.admin("token", "create", "--site", "paris", "--uses", "2"))
	c.enrollNode("n1", tok)
	c.enrollNode("n2", tok)
	c.waitAlive(2)
	arch := filepath.Join(c.root, "hello.tar.gz")
	writeTarGz(t, arch, map[string]string{"run.sh": "#!/bin/sh\necho hello from $RELAYMESH_NODE_NAME\n"})
	return c, c.build(arch, "--name", "hello", "--version", "1.0", "--action", "launch", "--command", "sh run.sh")
}

var floodProtos = []protocol.ID{core.ProtoStatus, core.ProtoSync, core.ProtoEnroll}

// TestFloodUnenrolled: a few fresh identities flood the coordinator's
// status, sync and enrollment protocols; every status and sync stream is
// reset unread, none gets an answer that means its bytes were read, and a
// deployment to the enrolled nodes completes meanwhile: their reports land.
func TestFloodUnenrolled(t *testing.T) {
	c, pkg := floodCluster(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := flood(ctx, t, c.coordAddr(), 5, 12, []protocol.ID{core.ProtoStatus, core.ProtoSync})
	eventually(t, 60*time.Second, "every flood stream ended", func() (bool, string) {
		return res.reset.Load()+res.answered.Load()+res.unopened.Load()+res.other.Load() == 5*12, res.String()
	})
	// A stream the coordinator refuses while it is being opened (over the
	// stranger stream limit) is refused too; every one that opened must
	// be reset unread.
	if res.answered.Load() != 0 || res.reset.Load() == 0 || res.reset.Load()+res.unopened.Load() != 5*12 {
		t.Fatalf("unenrolled flood on status and sync: %s; want every stream reset unread or refused", res)
	}
	d := c.deploy(2*time.Minute, pkg, "--all")
	if d.State != coordinator.DeployCompleted || d.Counts[core.StateSuccess] != 2 {
		t.Fatalf("deployment under flood: %s %v", d.State, d.Counts)
	}
}

// TestBenchFlood (make bench-flood, RELAYMESH_BENCH_FLOOD=1; out of make
// test for its load): 100 fresh identities x 100 streams each (half
// announce 32 MiB and trickle, half send 16 MiB; status, sync and
// enrollment in turn) against a coordinator process, while a deployment
// to two enrolled nodes runs. Prints the coordinator's VmRSS/VmHWM before,
// during and after; fails when RSS grows by more than 32 MiB or the
// reports do not land.
func TestBenchFlood(t *testing.T) {
	if os.Getenv("RELAYMESH_BENCH_FLOOD") == "" {
		t.Skip("benchmark: run with make bench-flood")
	}
	const ids, per = 100, 100
	// The figures are the coordinator's as shipped: without -race, whose
	// shadow memory would multiply them.
	bin := filepath.Join(t.TempDir(), "relaymesh")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c, pkg := floodCluster(t, bin)
	pid := c.procs["coordinator"].cmd.Process.Pid
	rss0, hwm0 := vm(t, pid)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	res := flood(ctx, t, c.coordAddr(), ids, per, floodProtos)
	d := c.deploy(3*time.Minute, pkg, "--all")
	rss1, hwm1 := vm(t, pid)
	// Let the trickling streams run on for a while, then sample again.
	eventually(t, 2*time.Minute, "flood streams settled", func() (bool, string) {
		return res.reset.Load()+res.answered.Load()+res.other.Load() >= ids*per/2, res.String()
	})
	rss2, hwm2 := vm(t, pid)
	cancel()
	rss3, hwm3 := vm(t, pid)
	fmt.Printf("\nflood: %d identities x %d streams, %s, deployment %s %v after %s\n",
		ids, per, res, d.State, d.Counts, time.Since(start).Round(time.Millisecond))
	fmt.Printf("%-22s %10s %10s\n", "coordinator", "VmRSS MiB", "VmHWM MiB")
	for _, r := range []struct {
		what     string
		rss, hwm int64
	}{{"before", rss0, hwm0}, {"during (deploy done)", rss1, hwm1}, {"during (half ended)", rss2, hwm2}, {"after", rss3, hwm3}} {
		fmt.Printf("%-22s %10.1f %10.1f\n", r.what, float64(r.rss)/1024, float64(r.hwm)/1024)
	}
	if d.State != coordinator.DeployCompleted || d.Counts[core.StateSuccess] != 2 {
		t.Errorf("deployment under flood: %s %v", d.State, d.Counts)
	}
	if grow := max(rss1, rss2, hwm3) - rss0; grow > 32<<10 {
		t.Errorf("coordinator RSS grew by %d KiB under the flood, goal 32 MiB", grow)
	}
}
