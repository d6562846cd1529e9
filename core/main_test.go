package core

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run when any test (the chunker in particular) leaves a
// goroutine behind, and removes the benchmarks' shared data file.
func TestMain(m *testing.M) {
	code := m.Run()
	removeBenchFile()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// t0 is a Saturday.
var t0 = time.Date(2026, time.March, 14, 10, 0, 0, 0, time.UTC)

// seedKey returns a deterministic ed25519 key.
func seedKey(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var (
	coordKey = seedKey(1)
	otherKey = seedKey(2)
	nodeKey  = seedKey(3)
)

// randomBytes returns n bytes from a generator seeded with seed.
func randomBytes(n int, seed byte) []byte {
	var s [32]byte
	s[0] = seed
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}

// testCIDs returns n distinct canonical fragment CID strings.
func testCIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = FragmentCID(fmt.Appendf(nil, "fragment %d", i)).String()
	}
	return out
}

func testDigest() string {
	sum := sha256.Sum256([]byte("archive"))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func launchManifest() *Manifest {
	return &Manifest{
		Schema:       ManifestSchema,
		Name:         "agent",
		Version:      "1.2.3",
		OS:           "linux",
		Arch:         "amd64",
		Action:       ActionLaunch,
		Command:      []string{"./install.sh", "--quiet", "<&>"},
		Priority:     5,
		TimeoutSec:   600,
		Uninstall:    []string{"/usr/bin/agent-uninstall"},
		Size:         3*MinFragmentSize + 1,
		Digest:       testDigest(),
		FragmentSize: MinFragmentSize,
		Fragments:    testCIDs(4),
	}
}

func executeManifest() *Manifest {
	return &Manifest{
		Schema:  ManifestSchema,
		Name:    "restart-spooler",
		Version: "1",
		OS:      "windows",
		Arch:    "any",
		Action:  ActionExecute,
		Command: []string{"sc.exe", "stop", "spooler"},
	}
}

func storeManifest() *Manifest {
	return &Manifest{
		Schema:       ManifestSchema,
		Name:         "wallpaper",
		Version:      "2026.03",
		OS:           "any",
		Arch:         "any",
		Action:       ActionStore,
		StorePath:    `C:\ProgramData\wallpaper`,
		Priority:     10,
		Size:         2 * MinFragmentSize,
		Digest:       testDigest(),
		FragmentSize: MinFragmentSize,
		Fragments:    testCIDs(2),
	}
}

func mustID(t testing.TB, m *Manifest) (string, []byte) {
	t.Helper()
	id, b, err := m.ID()
	if err != nil {
		t.Fatalf("manifest ID: %v", err)
	}
	return id.String(), b
}

func deployOrder() *Order {
	pkg := FragmentCID([]byte("manifest")).String()
	return &Order{
		Schema:    OrderSchema,
		Kind:      KindDeploy,
		ID:        "dep-42",
		KeyID:     KeyID(pubOf(coordKey)),
		Seq:       11,
		IssuedAt:  t0,
		NotBefore: t0,
		Expires:   t0.Add(24 * time.Hour),
		Packages:  []string{pkg},
		Targets:   []string{"node-a", "node-b", "node-c"},
		Priority:  5,
		Mode:      ModeOneByOne,
		Reboot:    RebootNever,
		Timeout:   600,
		Window:    "Sat 02:00-04:00",
		Prefetch:  true,
	}
}

func cancelOrder() *Order {
	return &Order{
		Schema:    OrderSchema,
		Kind:      KindCancel,
		ID:        "cancel-dep-42",
		KeyID:     KeyID(pubOf(coordKey)),
		Seq:       12,
		IssuedAt:  t0,
		NotBefore: t0,
		Expires:   t0.Add(time.Hour),
		Targets:   []string{"node-a"},
		Cancels:   "dep-42",
	}
}

func nodeStatus() *Status {
	return &Status{
		Schema:       StatusSchema,
		NodeID:       "node-a",
		OrderID:      "dep-42",
		Package:      FragmentCID([]byte("manifest")).String(),
		Seq:          3,
		State:        StateSuccess,
		ExitCode:     0,
		Time:         t0.Add(1500 * time.Millisecond),
		BytesFetched: 1 << 20,
		Output:       "installed <ok> ✓",
		Detail:       "done",
	}
}

// checkErr fails unless errors.Is(err, want) and err's message holds every
// string of contains.
func checkErr(t testing.TB, err, want error, contains ...string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}
