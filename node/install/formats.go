package install

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
)

// The readers below turn tar.gz and zip members into entries; what may be
// written, and how, is decided in extract.go.

func (x *extractor) tarGz(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("%w: gzip: %w", ErrFormat, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		if err := x.ctx.Err(); err != nil {
			return fmt.Errorf("install: extract: %w", err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		// ErrInsecurePath comes with a usable header; our own checks decide.
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return fmt.Errorf("%w: tar: %w", ErrFormat, err)
		}
		e := entry{
			name:     hdr.Name,
			perm:     fs.FileMode(hdr.Mode) & fs.ModePerm,
			size:     hdr.Size,
			linkname: hdr.Linkname,
			open:     func() (io.ReadCloser, error) { return io.NopCloser(tr), nil },
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			e.kind = kindFile
		case tar.TypeDir:
			e.kind = kindDir
		case tar.TypeSymlink:
			e.kind = kindSymlink
		case tar.TypeLink:
			e.kind = kindHardlink
		case tar.TypeXGlobalHeader:
			continue // metadata only, as git archive writes
		default:
			return fmt.Errorf("%w: entry %q: %s not allowed", ErrUnsafeArchive, hdr.Name, tarType(hdr.Typeflag))
		}
		if err := x.entry(e); err != nil {
			return err
		}
	}
}

func tarType(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeFifo:
		return "FIFO"
	default:
		return fmt.Sprintf("tar entry type %q", t)
	}
}

func (x *extractor) zip(r io.ReaderAt, size int64) error {
	zr, err := zip.NewReader(r, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("%w: zip: %w", ErrFormat, err)
	}
	if len(zr.File) > x.lim.MaxFiles {
		return fmt.Errorf("%w: %d entries, limit %d (Limits.MaxFiles)", ErrTooManyFiles, len(zr.File), x.lim.MaxFiles)
	}
	for _, zf := range zr.File {
		if err := x.ctx.Err(); err != nil {
			return fmt.Errorf("install: extract: %w", err)
		}
		mode := zf.Mode()
		e := entry{name: zf.Name, perm: mode.Perm(), size: math.MaxInt64, open: zf.Open}
		if zf.UncompressedSize64 < math.MaxInt64 {
			e.size = int64(zf.UncompressedSize64)
		}
		switch mode.Type() {
		case 0:
			e.kind = kindFile
		case fs.ModeDir:
			e.kind = kindDir
		case fs.ModeSymlink:
			e.kind = kindSymlink
			if e.linkname, err = readLink(zf); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: entry %q: %s not allowed", ErrUnsafeArchive, zf.Name, zipType(mode))
		}
		if err := x.entry(e); err != nil {
			return err
		}
	}
	return nil
}

func zipType(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	default:
		return fmt.Sprintf("file type %v", m.Type())
	}
}

// readLink reads a zip symlink's target, which is stored as its content.
func readLink(zf *zip.File) (string, error) {
	rc, err := zf.Open()
	if err != nil {
		return "", fmt.Errorf("%w: zip: entry %q: %w", ErrFormat, zf.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
	if err != nil {
		return "", fmt.Errorf("%w: zip: entry %q: %w", ErrFormat, zf.Name, err)
	}
	return string(b), nil
}
