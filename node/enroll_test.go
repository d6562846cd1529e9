package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnrollWritesNodeDir(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := filepath.Join(t.TempDir(), "node")
	e, err := Enroll(testCtx(t), EnrollOptions{Dir: dir, Coordinator: f.addr(), Token: f.token, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if e.Site != "branch-1" || e.Name != host || e.CoordinatorID != f.host().ID().String() || len(e.OrderKeys) != 1 {
		t.Errorf("enrollment = %+v", e)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, IdentityFile: 0o600, GossipKeysFile: 0o600, EnrollmentFile: 0o600} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", filepath.Join(dir, name), got, want)
		}
	}
	loaded, err := LoadEnrollment(dir)
	if err != nil || loaded.NodeID != e.NodeID {
		t.Fatalf("LoadEnrollment = %+v, %v", loaded, err)
	}
	keys, err := ReadGossipKeys(dir)
	if err != nil || len(keys) != 1 || len(keys[0]) != 32 {
		t.Errorf("gossip keys = %d keys, %v", len(keys), err)
	}

	_, err = Enroll(testCtx(t), EnrollOptions{Dir: dir, Coordinator: f.addr(), Token: f.token})
	if !errors.Is(err, ErrAlreadyEnrolled) || !strings.Contains(err.Error(), dir) {
		t.Errorf("second enroll: %v; want ErrAlreadyEnrolled naming %s", err, dir)
	}
}

func TestEnrollBadTokenWritesNothing(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	for _, existing := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "node")
		if existing {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Enroll(testCtx(t), EnrollOptions{Dir: dir, Coordinator: f.addr(), Token: "wrong", Logger: testLogger(t)})
		if !errors.Is(err, ErrEnrollRefused) || !strings.Contains(err.Error(), "join token unknown") {
			t.Errorf("err = %v; want ErrEnrollRefused with the coordinator's reason", err)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 0 {
			t.Errorf("failed enroll left %d files in %s", len(ents), dir)
		}
		if _, err := Start(testCtx(t), TestConfig(dir)); !errors.Is(err, ErrNotEnrolled) {
			t.Errorf("Start on a failed enroll: %v; want ErrNotEnrolled", err)
		}
	}
}

func TestEnrollRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, opts := range []EnrollOptions{
		{Dir: "", Coordinator: "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGzBiNrBoVBY5vpSx6mNJ8fCZv5G8AdPKXYD4c3VRLRDd", Token: "t"},
		{Dir: dir, Coordinator: "/ip4/127.0.0.1/tcp/1", Token: "t"},
		{Dir: dir, Coordinator: "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWGzBiNrBoVBY5vpSx6mNJ8fCZv5G8AdPKXYD4c3VRLRDd", Token: ""},
	} {
		if _, err := Enroll(testCtx(t), opts); !errors.Is(err, ErrBadConfig) {
			t.Errorf("Enroll(%+v) = %v, want ErrBadConfig", opts, err)
		}
	}
}
