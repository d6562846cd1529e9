package install

import (
	"io/fs"
	"path/filepath"
	"testing"
)

// FuzzExtract feeds arbitrary bytes to Extract. Whatever happens, nothing may
// appear outside dest, no symlink may lead out of it, no set-id bit may
// survive, and Extract may not panic.
func FuzzExtract(f *testing.F) {
	const out = "/nonexistent/relaymesh-fuzz-outside"
	for _, tc := range hostileCases() {
		f.Add(tc.build(f, out))
	}
	f.Add(goodTarGz(f))
	f.Add(goodZip(f))
	lim := Limits{MaxBytes: 1 << 20, MaxFiles: 256}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newSandbox(t, data)
		_, _ = Extract(t.Context(), s.archive, s.dest, lim)
		assertConfined(t, s.parent, s.dest)
		if n := diskBytes(t, s.dest); n > lim.MaxBytes+1 {
			t.Errorf("wrote %d bytes, cap %d", n, lim.MaxBytes)
		}
		err := filepath.WalkDir(s.dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			m := fi.Mode()
			switch {
			case m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0:
				t.Errorf("%s: mode %v keeps a special bit", p, m)
			case m.Perm()&^0o755 != 0:
				t.Errorf("%s: mode %v wider than 0755", p, m)
			case !m.IsDir() && !m.IsRegular():
				t.Errorf("%s: mode %v is not a directory or regular file", p, m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
