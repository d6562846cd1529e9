//go:build linux

package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// freeBytes is the space unprivileged writers may still use on dir's
// filesystem; ok is false when it cannot be had.
func freeBytes(dir string) (int64, bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}

// allocate makes path a file of n bytes with its blocks allocated
// (fallocate), so that removing it frees them.
func allocate(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// FreeBytes is the free space (for unprivileged writers) on the filesystem
// holding dir; ok is false when it cannot be had.
func FreeBytes(dir string) (free int64, ok bool) { return freeBytes(dir) }

// SameFilesystem reports whether a and b are on one filesystem.
func SameFilesystem(a, b string) bool {
	var sa, sb unix.Stat_t
	return unix.Stat(a, &sa) == nil && unix.Stat(b, &sb) == nil && sa.Dev == sb.Dev
}
