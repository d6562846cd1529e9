package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tarEntry describes one member of a test tar.gz. typ defaults to a regular
// file; mode to 0644.
type tarEntry struct {
	name string
	typ  byte
	mode int64
	body string
	link string
}

func reg(name, body string) tarEntry { return tarEntry{name: name, body: body} }
func dir(name string) tarEntry       { return tarEntry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, link: target}
}
func hardlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeLink, link: target}
}
func special(name string, typ byte) tarEntry   { return tarEntry{name: name, typ: typ, mode: 0o644} }
func withMode(e tarEntry, mode int64) tarEntry { e.mode = mode; return e }

func makeTarGz(tb testing.TB, entries ...tarEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: e.typ, PAXRecords: map[string]string{"comment": "git archive"}}
		} else if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Mode == 0 && e.typ != tar.TypeXGlobalHeader {
			hdr.Mode = 0o644
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatalf("tar header %q: %v", e.name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			tb.Fatalf("tar body %q: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// zipEntry describes one member of a test zip; mode defaults to 0644.
type zipEntry struct {
	name string
	mode fs.FileMode
	body string
}

func makeZip(tb testing.TB, entries ...zipEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		fh.SetMode(mode)
		w, err := zw.CreateHeader(fh)
		if err != nil {
			tb.Fatalf("zip header %q: %v", e.name, err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			tb.Fatalf("zip body %q: %v", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// zeros reads as an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// sandbox is a parent directory holding only dest (and, for some tests,
// outside), plus the archive kept in a separate temp dir.
type sandbox struct {
	parent, dest, outside, archive string
}

func newSandbox(t *testing.T, archive []byte) sandbox {
	t.Helper()
	s := sandbox{parent: t.TempDir()}
	s.dest = filepath.Join(s.parent, "dest")
	s.outside = filepath.Join(s.parent, "outside") // never created by tests unless said
	s.archive = filepath.Join(t.TempDir(), "archive")
	if archive != nil {
		if err := os.WriteFile(s.archive, archive, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// assertConfined checks that the parent holds nothing but the names given
// and that every symlink under dest resolves inside dest.
func assertConfined(tb testing.TB, parent, dest string, allowed ...string) {
	tb.Helper()
	ents, err := os.ReadDir(parent)
	if err != nil {
		tb.Fatal(err)
	}
	ok := map[string]bool{filepath.Base(dest): true}
	for _, a := range allowed {
		ok[a] = true
	}
	for _, e := range ents {
		if !ok[e.Name()] {
			tb.Errorf("%s appeared next to dest", filepath.Join(parent, e.Name()))
		}
	}
	assertLinksInside(tb, dest)
}

func assertLinksInside(tb testing.TB, dest string) {
	tb.Helper()
	realDest, err := filepath.EvalSymlinks(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		tb.Fatal(err)
	}
	err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if filepath.IsAbs(target) {
			tb.Errorf("symlink %s -> %s is absolute", p, target)
			return nil
		}
		resolved, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or a loop: points nowhere, not outside
		}
		if resolved != realDest && !strings.HasPrefix(resolved, realDest+string(filepath.Separator)) {
			tb.Errorf("symlink %s -> %s resolves outside dest, to %s", p, target, resolved)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// diskBytes sums the sizes of the regular files under dir.
func diskBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return total
}
