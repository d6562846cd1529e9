package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// TestDowngradeRefusedBeforeFetching: with agent 2.0 installed (and the node
// restarted since, so the record is the one on disk), an order of agent 1.0
// fails ERR_DOWNGRADE naming both versions before one of its fragments is
// asked for and runs nothing; the same package in an order that allows the
// downgrade installs.
func TestDowngradeRefusedBeforeFetching(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	dir := enrollNode(t, f)
	n := startNode(t, dir, nil)
	tmp := t.TempDir()
	named := func(v string) func(m *core.Manifest) {
		return func(m *core.Manifest) { m.Name, m.Version = "agent", v }
	}
	newer := f.addPackageWith(markerScript(filepath.Join(tmp, "v2"), 0), 1<<10, named("2.0"))
	env := f.sign(f.order("up", n.ID().String(), newer, nil))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	f.waitState(t, "up", core.StateSuccess)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	n = startNode(t, dir, nil)

	older := f.addPackageWith(markerScript(filepath.Join(tmp, "v1"), 0), 200<<10, named("1.0"))
	env = f.sign(f.order("down", n.ID().String(), older, nil))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	got := f.waitState(t, "down", core.ErrDowngrade)
	for _, want := range []string{"agent 1.0 is older than agent 2.0", newer.id, "--allow-downgrade"} {
		if !strings.Contains(got.Detail, want) {
			t.Errorf("detail %q does not say %q", got.Detail, want)
		}
	}
	for _, c := range older.frags {
		if f.servedCount()[c] != 0 {
			t.Errorf("fragment %s of the refused downgrade was served", c)
		}
	}
	if _, err := os.Stat(filepath.Join(tmp, "v1")); err == nil {
		t.Fatal("the refused downgrade ran")
	}

	env = f.sign(f.order("down-ok", n.ID().String(), older, func(o *core.Order) { o.AllowDowngrade = true }))
	if acc, err := f.push(testCtx(t), n, env); err != nil || acc != 1 {
		t.Fatalf("push: accepted %d, %v", acc, err)
	}
	f.waitState(t, "down-ok", core.StateSuccess)
	if _, err := os.Stat(filepath.Join(tmp, "v1")); err != nil {
		t.Fatalf("the allowed downgrade did not run: %v", err)
	}
}
