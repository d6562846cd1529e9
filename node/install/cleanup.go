package install

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Cleanup removes dir and everything under it. When a first attempt fails,
// it makes every directory in the tree owner-accessible (an archive or an
// install command may have left some read-only) and tries again. A missing
// dir is not an error. Failure wraps ErrClean.
func Cleanup(dir string) error {
	if dir == "" || filepath.Clean(dir) == "/" {
		return fmt.Errorf("%w: refusing to remove %q", ErrClean, dir)
	}
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	// WalkDir calls us for a directory before reading it, so the chmod
	// lands in time; it does not follow symlinks, so only real directories
	// under dir are touched.
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrClean, dir, err)
	}
	return nil
}
