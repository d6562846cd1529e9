package coordinator

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// TestSnapshotRestoreFinishesDeployment snapshots a running coordinator
// mid-deployment, loses it, restores the snapshot into a fresh directory and
// finishes the deployment there: the nodes' pinned order key and the
// coordinator's peer ID are the same, their reports apply, fragments are
// served, and what happened after the snapshot is not in it.
func TestSnapshotRestoreFinishesDeployment(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	m, frags := randomPackage(t, "agent", 200<<10, 64<<10)
	rec, err := f.c.BuildPackage(m, bytes.NewReader(joinFragments(m, frags)), 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	d1 := f.deploy(DeployRequest{All: true, Packages: []string{rec.ID}})
	for _, n := range f.nodes() {
		n.syncOrders(0)
	}
	f.a1.report(d1.ID, core.StateNotified, core.StateDownloading, core.StateSuccess)
	f.a2.report(d1.ID, core.StateNotified, core.StateDownloading)
	f.b1.report(d1.ID, core.StateNotified)
	before := f.deployment(d1.ID)

	var snap bytes.Buffer
	info, err := f.cl.SaveSnapshot(f.ctx, f.dir, &snap)
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if !info.Keys || info.PeerID != f.c.peerID || info.Files < len(snapshotRequired) || info.Entries == 0 {
		t.Fatalf("snapshot info = %+v", info)
	}
	// After the snapshot: an order the nodes see, which the restore loses.
	d2 := f.deploy(DeployRequest{Nodes: []string{"b1"}, Packages: []string{f.pkg}})
	f.b1.syncOrders(d1.Seq)
	f.cl.HTTP.CloseIdleConnections()
	if err := f.c.Close(); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	res, err := RestoreSnapshot(bytes.NewReader(snap.Bytes()), dir, f.log)
	if err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	if res.Nodes != 3 || res.Deployments != 1 || res.Packages != 2 {
		t.Errorf("restore = %+v, want 3 nodes, 1 deployment, 2 packages", res)
	}
	for _, name := range snapshotRequired {
		a, _ := os.ReadFile(filepath.Join(f.dir, name))
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s restored differently: %v", name, err)
		}
	}

	f.dir = dir
	f.start()
	for _, n := range f.nodes() {
		n.connect(f.harness)
	}
	if got := f.c.Host().ID(); got.String() != info.PeerID {
		t.Fatalf("restored coordinator is %s, want %s", got, info.PeerID)
	}
	after := f.deployment(d1.ID)
	for i, r := range after.Nodes {
		if b := before.Nodes[i]; r.Node != b.Node || r.State != b.State || r.LastSeq != b.LastSeq {
			t.Errorf("row %s after restore = %s/%d, want %s/%d", r.Name, r.State, r.LastSeq, b.State, b.LastSeq)
		}
	}
	if _, err := f.cl.Deployment(f.ctx, d2.ID); err == nil {
		t.Errorf("deployment %s made after the snapshot is in the restore", d2.ID)
	}
	// The nodes finish; the deployment completes.
	f.a2.report(d1.ID, core.StateDownloaded, core.StateInstalling, core.StateSuccess)
	if _, err := p2p.FetchFragment(f.ctx, f.b1.h, f.b1.coord, cid.MustParse(m.Fragments[2]), core.MaxFragmentSize); err != nil {
		t.Fatalf("fetch from the restored coordinator: %v", err)
	}
	f.b1.report(d1.ID, core.StateDownloading, core.StateInstalling, core.StateSuccess)
	if v := f.deployment(d1.ID); v.State != DeployCompleted {
		t.Fatalf("deployment after restore = %s %v, want COMPLETED", v.State, v.Counts)
	}
	// A new order is numbered past the lost one, and the nodes accept it.
	d3 := f.deploy(DeployRequest{Nodes: []string{"b1"}, Packages: []string{f.pkg}})
	if d3.Seq <= d2.Seq || d3.Seq != d1.Seq+RestoreSeqGap+1 {
		t.Errorf("first order after restore has seq %d, want %d (past the lost %d)", d3.Seq, d1.Seq+RestoreSeqGap+1, d2.Seq)
	}
	if o := f.b1.syncOrders(d2.Seq); len(o) != 1 || o[0].ID != d3.ID {
		t.Errorf("b1 orders after restore = %+v, want %s", o, d3.ID)
	}
}

// TestRestoreRefusesBadSnapshots: a truncated, damaged or foreign file, or
// a target that holds something, restores nothing and says why.
func TestRestoreRefusesBadSnapshots(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	var good, stream bytes.Buffer
	if _, err := f.cl.SaveSnapshot(f.ctx, f.dir, &good); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.WriteSnapshot(f.ctx, &stream); err != nil {
		t.Fatal(err)
	}
	g := good.Bytes()
	flipped := bytes.Clone(g)
	flipped[len(flipped)/2] ^= 0x40
	future := bytes.Clone(g)
	binary.BigEndian.PutUint16(future[len(snapMagic):], SnapshotFormat+1)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"foreign", []byte("PK\x03\x04 a zip file, not ours"), "not a relaymesh coordinator snapshot"},
		{"magic only", g[:len(snapMagic)], "truncated"},
		{"truncated in the middle", g[:len(g)/2], "truncated"},
		{"last byte cut", g[:len(g)-1], "truncated"},
		{"end frame cut", g[:len(g)-50], ""},
		{"flipped byte", flipped, ""},
		{"newer format", future, "format 2"},
		{"joined", append(bytes.Clone(g), g...), "after the end frame"},
		{"admin API stream", stream.Bytes(), "without the coordinator's keys"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "restored")
			_, err := RestoreSnapshot(bytes.NewReader(tc.file), dir, f.log)
			checkErr(t, err, ErrBadSnapshot, tc.want)
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("a refused restore left %v in %s", ents[0].Name(), parent)
			}
		})
	}
	t.Run("target not empty", func(t *testing.T) {
		_, err := RestoreSnapshot(bytes.NewReader(g), f.dir, f.log)
		checkErr(t, err, ErrConflict, f.dir, "not empty")
	})
	t.Run("empty target directory", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := RestoreSnapshot(bytes.NewReader(g), dir, f.log); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, FileOrderKey)); err != nil {
			t.Error(err)
		}
	})
	t.Run("empty target of another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give files away")
		}
		dir := t.TempDir()
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if _, err := RestoreSnapshot(bytes.NewReader(g), dir, f.log); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o750 {
			t.Errorf("restored directory mode %v, %v; want the target's 0750", st.Mode().Perm(), err)
		}
		err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if uid, gid, ok := ownerOf(p); !ok || uid != 65534 || gid != 65534 {
				t.Errorf("%s owned by %d:%d, want the target's 65534:65534", p, uid, gid)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("keys of another coordinator", func(t *testing.T) {
		other := t.TempDir()
		if _, err := Init(other); err != nil {
			t.Fatal(err)
		}
		_, err := f.cl.SaveSnapshot(f.ctx, other, &bytes.Buffer{})
		checkErr(t, err, ErrConflict, "holds the keys of")
	})
}

func TestSnapshotErrorsNameTheProblem(t *testing.T) {
	t.Parallel()
	_, err := newSnapReader(strings.NewReader("hello"))
	checkErr(t, err, ErrBadSnapshot, `"hello"`)
}
