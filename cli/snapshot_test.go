package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSnapshotSaveRestore: save from a running coordinator's directory,
// restore into a new one; a damaged file and a used directory are one-line
// errors that write nothing.
func TestSnapshotSaveRestore(t *testing.T) {
	t.Parallel()
	tc := startCoord(t)
	tc.enroll("paris", "paris-1")
	dir := tc.co.Dir()
	file := filepath.Join(t.TempDir(), "coord.rmsnap")
	r := run(t, "coordinator", "snapshot", "save", file, "--dir", dir)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "written to "+file) {
		t.Errorf("save said %q", r.stdout)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v, want mode 0600", st.Mode(), err)
	}

	restored := filepath.Join(t.TempDir(), "new")
	r = run(t, "coordinator", "snapshot", "restore", file, "--dir", restored)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "1 nodes") || !strings.Contains(r.stdout, "coordinator serve --dir "+restored) {
		t.Errorf("restore said %q", r.stdout)
	}

	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.rmsnap")
	if err := os.WriteFile(cut, b[:len(b)-10], 0o600); err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	mustFailOneLine(t, run(t, "coordinator", "snapshot", "restore", cut, "--dir", filepath.Join(parent, "x")),
		cut, "truncated", "nothing was restored")
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("refused restore left %s", ents[0].Name())
	}
	mustFailOneLine(t, run(t, "coordinator", "snapshot", "restore", file, "--dir", restored), "not empty")
	mustFailOneLine(t, run(t, "coordinator", "snapshot", "restore", file), "--dir is required")
	mustFailOneLine(t, run(t, "coordinator", "snapshot", "save"), "give one FILE")
	mustFailOneLine(t, run(t, "coordinator", "snapshot", "save", file, "--dir", t.TempDir()), "running coordinator")
}
