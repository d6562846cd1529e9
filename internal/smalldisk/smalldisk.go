// Package smalldisk gives tests a small, real filesystem to fill: a tmpfs
// of a chosen size (root only), and helpers that fill it the way another
// program would.
package smalldisk

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on a new temp dir and returns it. It
// skips the test, saying why, unless it runs as root. The unmount is
// registered now, so it runs after cleanups registered later (daemons
// that still use the mount stop first).
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Fill writes the file path until its filesystem is full (ENOSPC).
func Fill(t testing.TB, path string) {
	t.Helper()
	write(t, path, -1)
}

// FillLeaving writes the file path until its filesystem has about leave
// bytes free.
func FillLeaving(t testing.TB, path string, leave int64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	write(t, path, max(0, int64(st.Bavail)*st.Bsize-leave))
}

// write writes n bytes to path (n < 0: until the disk is full).
func write(t testing.TB, path string, n int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for n != 0 {
		b := chunk
		if n > 0 {
			b = chunk[:min(int64(len(chunk)), n)]
		}
		if _, err := f.Write(b); err != nil {
			if n < 0 && errors.Is(err, syscall.ENOSPC) {
				return
			}
			t.Fatalf("fill %s: %v", path, err)
		}
		if n > 0 {
			n -= int64(len(b))
		}
	}
}
