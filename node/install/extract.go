package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path"
)

// Default limits for one archive.
const (
	DefaultMaxBytes int64 = 4 << 30
	DefaultMaxFiles       = 100_000
)

// Limits caps what one archive may put on disk.
type Limits struct {
	// MaxBytes caps the content bytes written, summed over all regular files.
	// Bytes actually written are counted, not the sizes headers declare.
	MaxBytes int64 `units:"size"`
	// MaxFiles caps the number of entries of any kind: directories, files
	// and links.
	MaxFiles int
}

// DefaultLimits returns 4 GiB and 100,000 entries.
func DefaultLimits() Limits {
	return Limits{MaxBytes: DefaultMaxBytes, MaxFiles: DefaultMaxFiles}
}

// Validate reports a limit that is not positive.
func (l Limits) Validate() error {
	if l.MaxBytes <= 0 {
		return fmt.Errorf("install: limits: MaxBytes %d: must be positive (default %d)", l.MaxBytes, DefaultMaxBytes)
	}
	if l.MaxFiles <= 0 {
		return fmt.Errorf("install: limits: MaxFiles %d: must be positive (default %d)", l.MaxFiles, DefaultMaxFiles)
	}
	return nil
}

// Stats says what Extract put on disk.
type Stats struct {
	Files int   // entries created: directories, files and links
	Bytes int64 // content bytes written
}

// Extract unpacks the tar.gz or zip archive at archivePath into destDir,
// creating destDir if needed. The format is told by the first bytes of the
// file, not its name.
//
// Every write goes through an os.Root opened on destDir. Entries that would
// land or point outside it, that would be written through a symlink, or that
// are anything but directories, regular files, symlinks and hard links are
// refused with an error wrapping ErrUnsafeArchive that names the entry.
// Set-id and sticky bits are dropped; files get 0644 or, when the archive
// marks them executable, 0755 (at most); directories at most 0755 and always
// owner-writable. Going over lim returns ErrTooLarge or ErrTooManyFiles.
//
// Extract stops when ctx ends. On error destDir may hold part of the archive;
// the caller removes it (Cleanup).
func Extract(ctx context.Context, archivePath, destDir string, lim Limits) (Stats, error) {
	if err := lim.Validate(); err != nil {
		return Stats{}, err
	}
	f, err := os.Open(archivePath)
	if err != nil {
		return Stats{}, fmt.Errorf("install: extract: %w", err)
	}
	defer f.Close()
	var magic [4]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Stats{}, fmt.Errorf("install: extract: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Stats{}, fmt.Errorf("install: extract: %w", err)
	}
	x, done, err := newExtractor(ctx, destDir, lim)
	if err != nil {
		return Stats{}, err
	}
	defer done()
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		err = x.tarGz(f)
	case n == 4 && string(magic[:]) == "PK\x03\x04":
		var fi fs.FileInfo
		if fi, err = f.Stat(); err == nil {
			x.isZip = true
			err = x.zip(f, fi.Size())
		}
	default:
		err = fmt.Errorf("%w: %s: not a tar.gz or zip archive (starts with %q)", ErrFormat, archivePath, magic[:n])
	}
	return x.stats, err
}

// ExtractTarGz is Extract for a tar.gz read from r as it arrives (the
// node streams it from its fragments, so the archive is never written
// whole to disk first). The same rules and limits apply. It returns when
// the tar's end is read; the caller drains r if it must see r's end.
func ExtractTarGz(ctx context.Context, r io.Reader, destDir string, lim Limits) (Stats, error) {
	if err := lim.Validate(); err != nil {
		return Stats{}, err
	}
	x, done, err := newExtractor(ctx, destDir, lim)
	if err != nil {
		return Stats{}, err
	}
	defer done()
	err = x.tarGz(r)
	return x.stats, err
}

// newExtractor makes destDir and an extractor confined to it; done closes
// the root.
func newExtractor(ctx context.Context, destDir string, lim Limits) (*extractor, func(), error) {
	if err := os.MkdirAll(destDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("install: extract: %w", err)
	}
	root, err := os.OpenRoot(destDir)
	if err != nil {
		return nil, nil, fmt.Errorf("install: extract: %w", err)
	}
	x := &extractor{
		ctx:     ctx,
		root:    root,
		lim:     lim,
		dirs:    make(map[string]bool),
		regular: make(map[string]bool),
	}
	return x, func() { root.Close() }, nil
}

type kind int

const (
	kindDir kind = iota
	kindFile
	kindSymlink
	kindHardlink
)

// entry is one archive member, whatever the format.
type entry struct {
	name     string
	kind     kind
	perm     fs.FileMode // permission bits only
	size     int64       // declared content size; a hint, not trusted
	linkname string
	open     func() (io.ReadCloser, error)
}

type extractor struct {
	ctx     context.Context
	root    *os.Root
	lim     Limits
	isZip   bool
	stats   Stats
	dirs    map[string]bool // real directories made or checked
	regular map[string]bool // regular files written: valid hard link targets
}

func (x *extractor) entry(e entry) error {
	name, why := cleanName(e.name, x.isZip)
	if why != "" {
		return fmt.Errorf("%w: entry %q: %s", ErrUnsafeArchive, e.name, why)
	}
	if name == "" {
		if e.kind == kindDir {
			return nil // "./": the destination itself
		}
		return fmt.Errorf("%w: entry %q: names the destination itself", ErrUnsafeArchive, e.name)
	}
	if x.stats.Files >= x.lim.MaxFiles {
		return fmt.Errorf("%w: entry %q: more than %d entries (Limits.MaxFiles)", ErrTooManyFiles, e.name, x.lim.MaxFiles)
	}
	if err := x.parents(path.Dir(name), e.name); err != nil {
		return err
	}
	var err error
	switch e.kind {
	case kindDir:
		err = x.dir(name, e)
	case kindFile:
		err = x.file(name, e)
	case kindSymlink:
		err = x.symlink(name, e)
	case kindHardlink:
		err = x.hardlink(name, e)
	}
	if err != nil {
		return err
	}
	x.stats.Files++
	return nil
}

// parents makes dir and its ancestors real directories, refusing to go
// through a symlink: every entry then sits in a real directory at the depth
// its name says, which is what symlinkTarget's check relies on.
func (x *extractor) parents(dir, entry string) error {
	if dir == "." || x.dirs[dir] {
		return nil
	}
	if err := x.parents(path.Dir(dir), entry); err != nil {
		return err
	}
	return x.realDir(dir, entry)
}

func (x *extractor) realDir(dir, entry string) error {
	if x.dirs[dir] {
		return nil
	}
	fi, err := x.root.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		err = x.root.Mkdir(dir, 0o755)
		if err == nil {
			x.dirs[dir] = true
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			// Another process (an install of the same package into the
			// same path) made it in between: check what it made.
			fi, err = x.root.Lstat(dir)
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("install: extract: entry %q: %w", entry, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: entry %q: goes through symlink %q", ErrUnsafeArchive, entry, dir)
	case !fi.IsDir():
		return fmt.Errorf("%w: entry %q: %q is not a directory", ErrUnsafeArchive, entry, dir)
	}
	x.dirs[dir] = true
	return nil
}

func (x *extractor) dir(name string, e entry) error {
	if err := x.realDir(name, e.name); err != nil {
		return err
	}
	if err := x.root.Chmod(name, dirPerm(e.perm)); err != nil {
		return fmt.Errorf("install: extract: entry %q: %w", e.name, err)
	}
	return nil
}

// clearLeaf makes room for a file or hard link at name: nothing may be there
// but an earlier regular file, which is removed (an archive may carry a file
// twice; the last one wins, and a hard link to the old one keeps the old
// content rather than being written through).
func (x *extractor) clearLeaf(name, entry string) error {
	fi, err := x.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("install: extract: entry %q: %w", entry, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: entry %q: would replace existing %s", ErrUnsafeArchive, entry, describe(fi.Mode()))
	}
	if err := x.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("install: extract: entry %q: %w", entry, err)
	}
	delete(x.regular, name)
	return nil
}

func describe(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	default:
		return "file " + m.Type().String()
	}
}

func (x *extractor) file(name string, e entry) error {
	if err := x.clearLeaf(name, e.name); err != nil {
		return err
	}
	remaining := x.lim.MaxBytes - x.stats.Bytes
	if e.size > remaining { // fail fast on an honest header
		return x.tooLarge(e.name)
	}
	src, err := e.open()
	if err != nil {
		return fmt.Errorf("%w: entry %q: %w", ErrFormat, e.name, err)
	}
	defer src.Close()
	// Written under a temporary name and renamed into place: a crash
	// leaves no half-written file under the real name, and installs of the
	// same package into the same path at once each put a whole file.
	tmp := path.Join(path.Dir(name), fmt.Sprintf(".%s.relaymesh-%016x", path.Base(name), rand.Uint64()))
	f, err := x.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("install: extract: entry %q: %w", e.name, err)
	}
	fail := func(err error) error {
		f.Close()
		_ = x.root.Remove(tmp)
		return err
	}
	n, over, err := copyCapped(x.ctx, f, src, remaining)
	x.stats.Bytes += n
	switch {
	case over:
		return fail(x.tooLarge(e.name))
	case err != nil:
		if ctxErr := x.ctx.Err(); ctxErr != nil {
			return fail(fmt.Errorf("install: extract: %w", ctxErr))
		}
		return fail(fmt.Errorf("%w: entry %q: %w", ErrFormat, e.name, err))
	}
	if err := f.Chmod(filePerm(e.perm)); err != nil {
		return fail(fmt.Errorf("install: extract: entry %q: %w", e.name, err))
	}
	if err := f.Close(); err != nil {
		_ = x.root.Remove(tmp)
		return fmt.Errorf("install: extract: entry %q: %w", e.name, err)
	}
	if err := x.root.Rename(tmp, name); err != nil {
		_ = x.root.Remove(tmp)
		return fmt.Errorf("install: extract: entry %q: %w", e.name, err)
	}
	x.regular[name] = true
	return nil
}

func (x *extractor) tooLarge(entry string) error {
	return fmt.Errorf("%w: entry %q: more than %d bytes in all (Limits.MaxBytes)", ErrTooLarge, entry, x.lim.MaxBytes)
}

func (x *extractor) symlink(name string, e entry) error {
	target, err := symlinkTarget(name, e.linkname, x.isZip)
	if err != nil {
		return err
	}
	if _, err := x.root.Lstat(name); err == nil {
		return fmt.Errorf("%w: symlink %q: something is already there", ErrUnsafeArchive, e.name)
	}
	if err := x.root.Symlink(target, name); err != nil {
		return fmt.Errorf("install: extract: entry %q: %w", e.name, err)
	}
	return nil
}

func (x *extractor) hardlink(name string, e entry) error {
	target, why := cleanName(e.linkname, x.isZip)
	switch {
	case why != "":
		return fmt.Errorf("%w: hard link %q -> %q: %s", ErrUnsafeArchive, e.name, e.linkname, why)
	case !x.regular[target] || target == name:
		return fmt.Errorf("%w: hard link %q -> %q: target is not an earlier regular file", ErrUnsafeArchive, e.name, e.linkname)
	}
	if err := x.clearLeaf(name, e.name); err != nil {
		return err
	}
	if err := x.root.Link(target, name); err != nil {
		return fmt.Errorf("install: extract: entry %q: %w", e.name, err)
	}
	x.regular[name] = true
	return nil
}

// filePerm keeps the archive's permission bits but at most 0755 for an
// executable file and 0644 for a plain one, always owner read-write.
func filePerm(p fs.FileMode) fs.FileMode {
	p &= fs.ModePerm
	if p&0o111 != 0 {
		return p&0o755 | 0o700
	}
	return p&0o644 | 0o600
}

// dirPerm keeps the archive's bits but at most 0755, always owner rwx so the
// rest of the archive can be written and Cleanup can remove it.
func dirPerm(p fs.FileMode) fs.FileMode {
	return p&0o755 | 0o700
}

// copyCapped copies src to dst until EOF, writing at most limit+1 bytes, and
// reports over when src had more than limit. ctx is checked before each read.
func copyCapped(ctx context.Context, dst io.Writer, src io.Reader, limit int64) (n int64, over bool, err error) {
	if limit < 0 {
		limit = 0
	}
	probe := limit
	if probe < math.MaxInt64 {
		probe++
	}
	n, err = io.CopyN(dst, ctxReader{ctx, src}, probe)
	if n > limit {
		return n, true, nil
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, false, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
