package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestCleanup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"missing", func(*testing.T, string) {}},
		{"plain tree", func(t *testing.T, dir string) {
			mkfile(t, filepath.Join(dir, "a/b/c"), 0o644)
		}},
		{"read-only dirs and files", func(t *testing.T, dir string) {
			mkfile(t, filepath.Join(dir, "ro/deeper/f"), 0o400)
			chmod(t, filepath.Join(dir, "ro/deeper"), 0o500)
			chmod(t, filepath.Join(dir, "ro"), 0o000)
			chmod(t, dir, 0o500)
		}},
		{"symlink out is not followed", func(t *testing.T, dir string) {
			mkfile(t, filepath.Join(dir, "f"), 0o644)
			out := t.TempDir()
			mkfile(t, filepath.Join(out, "keep"), 0o644)
			if err := os.Symlink(out, filepath.Join(dir, "out")); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if _, err := os.Stat(filepath.Join(out, "keep")); err != nil {
					t.Errorf("Cleanup followed the symlink: %v", err)
				}
			})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "work")
			tc.setup(t, dir)
			if err := Cleanup(dir); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s still there: %v", dir, err)
			}
		})
	}
}

func TestCleanupRefuses(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"", "/", "//"} {
		if err := Cleanup(dir); !errors.Is(err, ErrClean) {
			t.Errorf("Cleanup(%q) = %v, want ErrClean", dir, err)
		}
	}
}

func mkfile(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("x"), mode); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}
