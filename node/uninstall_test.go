package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/relaymesh/relaymesh/core"
)

// An uninstall order runs the package's uninstall command in its extracted
// archive, reports SUCCESS, and the package counts as not installed: the
// next install order runs it again without --force.
func TestUninstallOrderRunsUninstall(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	tmp := t.TempDir()
	installed, removed := filepath.Join(tmp, "installed"), filepath.Join(tmp, "removed")
	pkg := f.addPackageWith(markerScript(installed, 0), 1<<10, func(m *core.Manifest) {
		m.Uninstall = []string{"sh", "-c", `test -x run.sh && rm "$1" && touch "$2"`, "sh", installed, removed}
	})
	push := func(id string, mut func(*core.Order)) {
		t.Helper()
		if acc, err := f.push(testCtx(t), n, f.sign(f.order(id, n.ID().String(), pkg, mut))); err != nil || acc != 1 {
			t.Fatalf("push %s: accepted %d, %v", id, acc, err)
		}
	}
	push("in-1", nil)
	f.waitState(t, "in-1", core.StateSuccess)
	push("out-1", func(o *core.Order) { o.Uninstall = true })
	got := f.waitState(t, "out-1", core.StateSuccess)
	if got.Detail != "uninstalled" {
		t.Errorf("uninstall report %+v", got)
	}
	if _, err := os.Stat(removed); err != nil {
		t.Fatalf("the uninstall command did not run in the package's directory: %v", err)
	}
	if _, err := os.Stat(installed); err == nil {
		t.Fatal("the uninstall command did not remove the marker")
	}
	push("in-2", nil)
	f.waitState(t, "in-2", core.StateSuccess)
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("reinstall after uninstall did not run (ERR_ALREADY_SETUP?): %v", err)
	}
}
