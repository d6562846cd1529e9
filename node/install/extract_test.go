package install

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hostileCase is an archive Extract must refuse. build gets the absolute
// path of a directory next to dest, for entries that aim outside.
type hostileCase struct {
	name    string
	build   func(tb testing.TB, out string) []byte
	lim     Limits
	want    error
	mention string // the error must name this entry
}

func tgz(entries ...tarEntry) func(testing.TB, string) []byte {
	return func(tb testing.TB, _ string) []byte { return makeTarGz(tb, entries...) }
}

func zipOf(entries ...zipEntry) func(testing.TB, string) []byte {
	return func(tb testing.TB, _ string) []byte { return makeZip(tb, entries...) }
}

func hostileCases() []hostileCase {
	many := make([]tarEntry, 5)
	for i := range many {
		many[i] = reg(string(rune('a'+i)), "x")
	}
	manyZip := make([]zipEntry, 5)
	for i := range manyZip {
		manyZip[i] = zipEntry{name: string(rune('a' + i)), body: "x"}
	}
	big := strings.Repeat("z", 600<<10)
	return []hostileCase{
		{name: "tar dotdot", build: tgz(reg("../x", "evil")), want: ErrUnsafeArchive, mention: "../x"},
		{name: "tar absolute", build: tgz(reg("/x", "evil")), want: ErrUnsafeArchive, mention: "/x"},
		{name: "tar nested dotdot", build: tgz(reg("a/../../x", "evil")), want: ErrUnsafeArchive, mention: "a/../../x"},
		{name: "tar dotdot after dir", build: tgz(dir("a/"), reg("a/..", "evil")), want: ErrUnsafeArchive, mention: "a/.."},
		{name: "tar absolute symlink then file through it", build: func(tb testing.TB, out string) []byte {
			return makeTarGz(tb, symlink("evil", out), reg("evil/file", "evil"))
		}, want: ErrUnsafeArchive, mention: "evil"},
		{name: "tar symlink to parent then file through it", build: tgz(symlink("d", ".."), reg("d/x", "evil")), want: ErrUnsafeArchive, mention: "d"},
		{name: "tar deep symlink escaping", build: tgz(dir("a/"), symlink("a/l", "../../x")), want: ErrUnsafeArchive, mention: "a/l"},
		{name: "tar symlink inside then file through it", build: tgz(dir("sub/"), symlink("a", "sub"), reg("a/file", "x")), want: ErrUnsafeArchive, mention: "a/file"},
		{name: "tar symlink to self dir then deep escape", build: tgz(symlink("a", "."), symlink("a/a/a/l", "../../../x")), want: ErrUnsafeArchive, mention: "a/a/a/l"},
		{name: "tar file replacing symlink", build: tgz(dir("sub/"), symlink("s", "sub/f"), reg("s", "x")), want: ErrUnsafeArchive, mention: "s"},
		{name: "tar symlink replacing file", build: tgz(reg("f", "x"), symlink("f", "g")), want: ErrUnsafeArchive, mention: "f"},
		{name: "tar file under file", build: tgz(reg("f", "x"), reg("f/g", "y")), want: ErrUnsafeArchive, mention: "f/g"},
		{name: "tar dir over file", build: tgz(reg("f", "x"), dir("f/")), want: ErrUnsafeArchive, mention: "f/"},
		{name: "tar hardlink to /etc/passwd", build: tgz(hardlink("passwd", "/etc/passwd")), want: ErrUnsafeArchive, mention: "passwd"},
		{name: "tar hardlink to dotdot", build: tgz(hardlink("h", "../x")), want: ErrUnsafeArchive, mention: "h"},
		{name: "tar hardlink to absolute outside", build: func(tb testing.TB, out string) []byte {
			return makeTarGz(tb, hardlink("h", filepath.Join(out, "f")))
		}, want: ErrUnsafeArchive, mention: "h"},
		{name: "tar hardlink to later file", build: tgz(hardlink("h", "f"), reg("f", "x")), want: ErrUnsafeArchive, mention: "h"},
		{name: "tar hardlink to dir", build: tgz(dir("d/"), hardlink("h", "d")), want: ErrUnsafeArchive, mention: "h"},
		{name: "tar hardlink to symlink", build: tgz(reg("f", "x"), symlink("s", "f"), hardlink("h", "s")), want: ErrUnsafeArchive, mention: "h"},
		{name: "tar hardlink to itself", build: tgz(reg("f", "x"), hardlink("f", "f")), want: ErrUnsafeArchive, mention: "f"},
		{name: "tar char device", build: tgz(special("null", tar.TypeChar)), want: ErrUnsafeArchive, mention: "null"},
		{name: "tar block device", build: tgz(special("sda", tar.TypeBlock)), want: ErrUnsafeArchive, mention: "sda"},
		{name: "tar fifo", build: tgz(special("pipe", tar.TypeFifo)), want: ErrUnsafeArchive, mention: "pipe"},
		{name: "tar unknown type", build: tgz(special("odd", 'Z')), want: ErrUnsafeArchive, mention: "odd"},
		{name: "tar root as file", build: tgz(reg(".", "x")), want: ErrUnsafeArchive, mention: "."},
		{name: "tar too many files", build: tgz(many...), lim: Limits{MaxBytes: 1 << 20, MaxFiles: 3}, want: ErrTooManyFiles, mention: "d"},
		{name: "tar too many bytes", build: tgz(reg("a", big), reg("b", big)), lim: Limits{MaxBytes: 1 << 20, MaxFiles: 10}, want: ErrTooLarge, mention: "b"},
		{name: "zip backslash dotdot", build: zipOf(zipEntry{name: `..\x`, body: "evil"}), want: ErrUnsafeArchive, mention: `..\x`},
		{name: "zip backslash nested", build: zipOf(zipEntry{name: `a\..\..\x`, body: "evil"}), want: ErrUnsafeArchive, mention: `a\..\..\x`},
		{name: "zip drive letter", build: zipOf(zipEntry{name: `C:/x`, body: "evil"}), want: ErrUnsafeArchive, mention: "C:/x"},
		{name: "zip drive relative", build: zipOf(zipEntry{name: `c:x`, body: "evil"}), want: ErrUnsafeArchive, mention: "c:x"},
		{name: "zip absolute", build: zipOf(zipEntry{name: "/x", body: "evil"}), want: ErrUnsafeArchive, mention: "/x"},
		{name: "zip dotdot", build: zipOf(zipEntry{name: "../x", body: "evil"}), want: ErrUnsafeArchive, mention: "../x"},
		{name: "zip absolute symlink then file through it", build: func(tb testing.TB, out string) []byte {
			return makeZip(tb, zipEntry{name: "evil", mode: fs.ModeSymlink | 0o777, body: out}, zipEntry{name: "evil/file", body: "evil"})
		}, want: ErrUnsafeArchive, mention: "evil"},
		{name: "zip symlink dotdot", build: zipOf(zipEntry{name: "l", mode: fs.ModeSymlink | 0o777, body: "../x"}), want: ErrUnsafeArchive, mention: "l"},
		{name: "zip symlink backslash", build: zipOf(zipEntry{name: "l", mode: fs.ModeSymlink | 0o777, body: `..\x`}), want: ErrUnsafeArchive, mention: "l"},
		{name: "zip fifo", build: zipOf(zipEntry{name: "pipe", mode: fs.ModeNamedPipe | 0o644}), want: ErrUnsafeArchive, mention: "pipe"},
		{name: "zip socket", build: zipOf(zipEntry{name: "sock", mode: fs.ModeSocket | 0o644}), want: ErrUnsafeArchive, mention: "sock"},
		{name: "zip char device", build: zipOf(zipEntry{name: "null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o644}), want: ErrUnsafeArchive, mention: "null"},
		{name: "zip too many files", build: zipOf(manyZip...), lim: Limits{MaxBytes: 1 << 20, MaxFiles: 3}, want: ErrTooManyFiles},
		{name: "zip too many bytes", build: zipOf(zipEntry{name: "a", body: big}, zipEntry{name: "b", body: big}), lim: Limits{MaxBytes: 1 << 20, MaxFiles: 10}, want: ErrTooLarge, mention: "b"},
		{name: "not an archive", build: func(testing.TB, string) []byte { return []byte("#!/bin/sh\nrm -rf /\n") }, want: ErrFormat},
		{name: "empty file", build: func(testing.TB, string) []byte { return nil }, want: ErrFormat},
		{name: "corrupt gzip", build: func(testing.TB, string) []byte { return []byte("\x1f\x8b\x08\x00garbage") }, want: ErrFormat},
		{name: "corrupt zip", build: func(testing.TB, string) []byte { return []byte("PK\x03\x04garbage") }, want: ErrFormat},
	}
}

func TestExtractRefusesHostileArchives(t *testing.T) {
	t.Parallel()
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, nil)
			if err := os.WriteFile(s.archive, tc.build(t, s.outside), 0o600); err != nil {
				t.Fatal(err)
			}
			lim := tc.lim
			if lim == (Limits{}) {
				lim = DefaultLimits()
			}
			_, err := Extract(t.Context(), s.archive, s.dest, lim)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract error = %v, want %v", err, tc.want)
			}
			if tc.mention != "" && !strings.Contains(err.Error(), strconv.Quote(tc.mention)) {
				t.Errorf("error %q does not name entry %q", err, tc.mention)
			}
			assertConfined(t, s.parent, s.dest)
		})
	}
}

func TestSizeErrorsAreUnsafe(t *testing.T) {
	t.Parallel()
	for _, err := range []error{ErrTooLarge, ErrTooManyFiles} {
		if !errors.Is(err, ErrUnsafeArchive) {
			t.Errorf("%v is not ErrUnsafeArchive", err)
		}
		if !strings.HasPrefix(err.Error(), "install: ") {
			t.Errorf("%q lacks the package prefix", err)
		}
	}
}

// A symlink already in dest that points outside (left by someone else) must
// not be written through.
func TestExtractDoesNotFollowExistingSymlinkOut(t *testing.T) {
	t.Parallel()
	s := newSandbox(t, makeTarGz(t, reg("pre/file", "evil"), reg("pre2/file", "evil")))
	if err := os.MkdirAll(s.outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.dest, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside", filepath.Join(s.dest, "pre")); err != nil {
		t.Fatal(err)
	}
	_, err := Extract(t.Context(), s.archive, s.dest, DefaultLimits())
	if !errors.Is(err, ErrUnsafeArchive) {
		t.Fatalf("Extract error = %v, want ErrUnsafeArchive", err)
	}
	ents, err := os.ReadDir(s.outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("outside holds %d entries, want none", len(ents))
	}
}

// goodTarGz is a well-behaved package using every allowed entry kind.
func goodTarGz(tb testing.TB) []byte {
	return makeTarGz(tb,
		tarEntry{name: "pax_global_header", typ: tar.TypeXGlobalHeader},
		dir("./"),
		dir("app/"),
		withMode(dir("app/bin/"), 0o2775),
		withMode(reg("app/bin/run", "#!/bin/sh\necho hi\n"), 0o755),
		withMode(reg("app/bin/suid", "x"), 0o4755),
		withMode(reg("app/etc/conf", "a=1\n"), 0o666),
		withMode(reg("app/etc/secret", "s\n"), 0o400),
		symlink("app/current", "bin/run"),
		symlink("app/etc/up", "../bin"),
		symlink("app/odd", "etc/../bin"), // written cleaned: "bin"
		hardlink("app/bin/run2", "app/bin/run"),
		reg("app/dup", "old"),
		hardlink("app/dup-link", "app/dup"),
		reg("app/dup", "new"),
		reg("./top", ""),
		// Unclean, B would resolve x/y/A (the root) then "..": outside.
		dir("x/y/"),
		symlink("x/y/A", "../.."),
		symlink("B", "x/y/A/.."),
	)
}

func TestExtractGoodTarGz(t *testing.T) {
	t.Parallel()
	archive := goodTarGz(t)
	s := newSandbox(t, archive)
	st, err := Extract(t.Context(), s.archive, s.dest, DefaultLimits())
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	wantBytes := int64(len("#!/bin/sh\necho hi\n") + 1 + len("a=1\n") + len("s\n") + len("old") + len("new"))
	if st.Files != 17 || st.Bytes != wantBytes {
		t.Errorf("Stats = %+v, want {Files:17 Bytes:%d}", st, wantBytes)
	}
	for _, c := range []struct {
		path string
		mode fs.FileMode
		body string
	}{
		{"app/bin", fs.ModeDir | 0o755, ""},
		{"app/bin/run", 0o755, "#!/bin/sh\necho hi\n"},
		{"app/bin/run2", 0o755, "#!/bin/sh\necho hi\n"},
		{"app/bin/suid", 0o755, "x"},
		{"app/etc/conf", 0o644, "a=1\n"},
		{"app/etc/secret", 0o600, "s\n"},
		{"app/dup", 0o644, "new"},
		{"app/dup-link", 0o644, "old"},
		{"top", 0o644, ""},
	} {
		p := filepath.Join(s.dest, c.path)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
		if fi.Mode().IsRegular() {
			if b, err := os.ReadFile(p); err != nil || string(b) != c.body {
				t.Errorf("%s: content %q (%v), want %q", c.path, b, err, c.body)
			}
		}
	}
	for link, want := range map[string]string{"app/current": "bin/run", "app/etc/up": "../bin", "app/odd": "bin", "x/y/A": "../..", "B": "x/y"} {
		if got, err := os.Readlink(filepath.Join(s.dest, link)); err != nil || got != want {
			t.Errorf("readlink %s = %q (%v), want %q", link, got, err, want)
		}
	}
	assertConfined(t, s.parent, s.dest)
}

func goodZip(tb testing.TB) []byte {
	return makeZip(tb,
		zipEntry{name: "pkg/", mode: fs.ModeDir | 0o755},
		zipEntry{name: "pkg/sub/deep/file.txt", body: "deep"},
		zipEntry{name: "pkg/setup", mode: 0o4755, body: "#!/bin/sh\n"},
		zipEntry{name: "pkg/link", mode: fs.ModeSymlink | 0o777, body: "sub/deep/file.txt"},
	)
}

func TestExtractGoodZip(t *testing.T) {
	t.Parallel()
	archive := goodZip(t)
	s := newSandbox(t, archive)
	st, err := Extract(t.Context(), s.archive, s.dest, DefaultLimits())
	if err != nil {
		t.Fatalf("Extract: %v", err)
	}
	if st.Files != 4 || st.Bytes != int64(len("deep")+len("#!/bin/sh\n")) {
		t.Errorf("Stats = %+v", st)
	}
	if b, err := os.ReadFile(filepath.Join(s.dest, "pkg/link")); err != nil || string(b) != "deep" {
		t.Errorf("through link: %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(s.dest, "pkg/setup")); err != nil || fi.Mode() != 0o755 {
		t.Errorf("pkg/setup mode: %v, %v; want 0755", fi, err)
	}
	assertConfined(t, s.parent, s.dest)
}

// writeZerosTarGz streams a tar.gz holding files of n zero bytes each to path,
// never holding the content in memory.
func writeZerosTarGz(tb testing.TB, path string, files int, n int64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zw, err := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if err != nil {
		tb.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for i := range files {
		hdr := &tar.Header{Name: "zeros" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Mode: 0o644, Size: n, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.CopyN(tw, zeros{}, n); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestExtractBombs(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	cases := []struct {
		name  string
		write func(tb testing.TB, path string)
	}{
		{"one 64 MiB file", func(tb testing.TB, p string) { writeZerosTarGz(tb, p, 1, 64<<20) }},
		{"64 files of 1 MiB", func(tb testing.TB, p string) { writeZerosTarGz(tb, p, 64, 1<<20) }},
		{"zip of 64 MiB", func(tb testing.TB, p string) { writeZerosZip(tb, p, 64<<20, 64<<20) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSandbox(t, nil)
			tc.write(t, s.archive)
			start := time.Now()
			st, err := Extract(t.Context(), s.archive, s.dest, Limits{MaxBytes: limit, MaxFiles: 1000})
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Extract error = %v, want ErrTooLarge", err)
			}
			if got := diskBytes(t, s.dest); got > limit+1 || st.Bytes > limit+1 {
				t.Errorf("wrote %d bytes (Stats %d), cap %d", got, st.Bytes, limit)
			}
			t.Logf("failed after %v", time.Since(start))
			assertConfined(t, s.parent, s.dest)
		})
	}
}

// writeZerosZip writes a zip with one deflated entry of n zero bytes whose
// header claims declared bytes.
func writeZerosZip(tb testing.TB, path string, n int64, declared uint64) {
	tb.Helper()
	var raw bytes.Buffer // about n/1000 bytes
	fw, err := flate.NewWriter(&raw, flate.BestSpeed)
	if err != nil {
		tb.Fatal(err)
	}
	crc := crc32.NewIEEE()
	if _, err := io.CopyN(io.MultiWriter(fw, crc), zeros{}, n); err != nil {
		tb.Fatal(err)
	}
	if err := fw.Close(); err != nil {
		tb.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               "zeros",
		Method:             zip.Deflate,
		CRC32:              crc.Sum32(),
		CompressedSize64:   uint64(raw.Len()),
		UncompressedSize64: declared,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := w.Write(raw.Bytes()); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
}

// A zip whose header understates the content: the bytes written, not the
// header, are what count, and the lie is caught.
func TestExtractZipLyingSize(t *testing.T) {
	t.Parallel()
	s := newSandbox(t, nil)
	writeZerosZip(t, s.archive, 64<<20, 1024)
	_, err := Extract(t.Context(), s.archive, s.dest, Limits{MaxBytes: 1 << 20, MaxFiles: 10})
	if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Extract error = %v, want ErrFormat or ErrTooLarge", err)
	}
	if got := diskBytes(t, s.dest); got > 1<<20+1 {
		t.Errorf("wrote %d bytes", got)
	}
}

// A gzip of nothing but zeros is an empty tar: nothing is written and the
// zeros are not all decompressed.
func TestExtractGzipOfZeros(t *testing.T) {
	t.Parallel()
	s := newSandbox(t, nil)
	f, err := os.Create(s.archive)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	if _, err := io.CopyN(zw, zeros{}, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Extract(t.Context(), s.archive, s.dest, Limits{MaxBytes: 1 << 20, MaxFiles: 10})
	if err != nil || st != (Stats{}) {
		t.Fatalf("Extract = %+v, %v; want nothing extracted", st, err)
	}
	if got := diskBytes(t, s.dest); got != 0 {
		t.Errorf("wrote %d bytes", got)
	}
}

// The cap counts bytes read, whatever a header said: an endless reader
// stops one byte past the cap.
func TestCopyCappedCountsActualBytes(t *testing.T) {
	t.Parallel()
	var dst countingWriter
	n, over, err := copyCapped(t.Context(), &dst, zeros{}, 1<<20)
	if !over || err != nil {
		t.Fatalf("copyCapped = %d, %v, %v; want over", n, over, err)
	}
	if n != 1<<20+1 || dst.n != n {
		t.Errorf("copied %d (writer saw %d), want %d", n, dst.n, 1<<20+1)
	}
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// cancelReader cancels its context after the first read.
type cancelReader struct {
	cancel context.CancelFunc
}

func (r cancelReader) Read(p []byte) (int, error) {
	r.cancel()
	return len(p), nil
}

func TestCopyCappedStopsOnCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var dst countingWriter
	_, over, err := copyCapped(ctx, &dst, cancelReader{cancel}, 1<<30)
	if over || !errors.Is(err, context.Canceled) {
		t.Fatalf("copyCapped = over %v, err %v; want context.Canceled", over, err)
	}
	if dst.n > 64<<10 {
		t.Errorf("copied %d bytes after cancel", dst.n)
	}
}

func TestExtractCancelled(t *testing.T) {
	t.Parallel()
	s := newSandbox(t, makeTarGz(t, reg("a", "x")))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Extract(ctx, s.archive, s.dest, DefaultLimits())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract error = %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(s.dest, "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a was extracted after cancel: %v", err)
	}
}

func TestLimitsValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lim   Limits
		field string
	}{
		{Limits{MaxBytes: 0, MaxFiles: 1}, "MaxBytes"},
		{Limits{MaxBytes: 1, MaxFiles: -1}, "MaxFiles"},
		{DefaultLimits(), ""},
	} {
		err := tc.lim.Validate()
		if (err == nil) != (tc.field == "") || (err != nil && !strings.Contains(err.Error(), tc.field)) {
			t.Errorf("%+v.Validate() = %v, want error naming %q", tc.lim, err, tc.field)
		}
	}
}

// TestConcurrentExtractsIntoOnePath: installs of one store package into one
// path at once (several nodes on one host) race to make the same
// directories; none may fail because another made a directory first.
func TestConcurrentExtractsIntoOnePath(t *testing.T) {
	t.Parallel()
	archive := makeTarGz(t, reg("etc/app/conf.d/a.conf", "a=1\n"), reg("etc/app/conf.d/b.conf", "b=2\n"), reg("var/lib/app/state", "s"))
	for round := range 20 {
		s := newSandbox(t, archive)
		errs := make(chan error, 6)
		for range cap(errs) {
			go func() {
				_, err := Extract(t.Context(), s.archive, s.dest, DefaultLimits())
				errs <- err
			}()
		}
		for range cap(errs) {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
