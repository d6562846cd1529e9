package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	r := run(t, "keys", "init", "--out", dir)
	mustSucceed(t, r)
	id := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("stdout %q: want the hex key ID", r.stdout)
	}
	priv := filepath.Join(dir, privateKeyFile)
	for p, want := range map[string]os.FileMode{priv: 0o600, filepath.Join(dir, publicKeyFile): 0o644, dir: 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", p, got, want)
		}
	}

	r = run(t, "keys", "show", "--key", priv)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, id) {
		t.Errorf("keys show: %q lacks key ID %s", r.stdout, id)
	}

	before, _ := os.ReadFile(priv)
	mustFailOneLine(t, run(t, "keys", "init", "--out", dir), priv, "refusing to overwrite")
	if after, _ := os.ReadFile(priv); string(after) != string(before) {
		t.Error("keys init overwrote the key")
	}

	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	mustFailOneLine(t, run(t, "keys", "show", "--key", priv), priv, "chmod 600")

	mustFailOneLine(t, run(t, "keys", "init"), "--out")
	mustFailOneLine(t, run(t, "keys", "show", "--key", filepath.Join(dir, "nope.key")), "nope.key", "keys init")
	mustFailOneLine(t, run(t, "keys", "init", "--out", priv), priv, "not a directory")
	mustFailOneLine(t, run(t, "keys", "init", "--out", dir, "extra"), `"extra"`)
}
