package cli

// The package build pipeline. It is glue over core and cache and would move
// to the coordinator package (coordinator.BuildPackage) once that exists;
// the command in package.go only fills in a buildSpec.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/schollz/progressbar/v3"

	"github.com/relaymesh/relaymesh/core"
)

// buildSpec is a checked package build request.
type buildSpec struct {
	manifest    core.Manifest // every field but the archive ones
	archivePath string        // "" = no archive
	archive     io.Reader     // nil = no archive
	archiveSize int64
	fragSize    int
	storeDir    string
	out         string
	progress    io.Writer // progress bar destination; nil = none
	log         *slog.Logger
	storeLog    *slog.Logger // for the cache
}

type buildResult struct {
	id       cid.Cid
	manifest *core.Manifest
}

// pinOwner is the cache pin owner of a built package's fragments.
func pinOwner(id cid.Cid) string { return "package/" + id.String() }

// buildPackage streams the archive into the store fragment by fragment,
// then stores and pins the manifest, closes the store and only then writes
// the manifest file. A failure part way leaves unpinned fragments in the
// store (evictable) and no manifest file.
func buildPackage(ctx context.Context, spec *buildSpec) (res buildResult, err error) {
	const cmd = "package build"
	st, err := openStore(spec.storeDir, spec.storeLog)
	if err != nil {
		return res, fmt.Errorf("%s: %w", cmd, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close store %q: %w", cmd, spec.storeDir, cerr)
		}
	}()

	m := spec.manifest
	var frags []cid.Cid
	if spec.archive != nil {
		start := time.Now()
		r := io.Reader(ctxReader{ctx: ctx, r: spec.archive})
		var bar *progressbar.ProgressBar
		if spec.progress != nil {
			bar = newProgressBar(spec.progress, spec.archiveSize, "building "+m.Name)
			r = io.TeeReader(r, bar)
		}
		w := newFragWriter(st, spec.fragSize)
		info, err := core.Chunk(r, spec.fragSize, func(c cid.Cid, data []byte) error {
			if err := w.write(c, data); err != nil {
				return fmt.Errorf("store fragment %d (%s): %w", len(frags), c, err)
			}
			frags = append(frags, c)
			return nil
		})
		if werr := w.close(); err == nil && werr != nil {
			err = fmt.Errorf("store fragment: %w", werr)
		}
		if bar != nil {
			_ = bar.Finish() // only draws
		}
		if err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("%s: interrupted: %w", cmd, ctx.Err())
			}
			if errors.Is(err, core.ErrEmptyArchive) {
				return res, usageErrorf("%s: archive %q: %w: give a non-empty archive", cmd, spec.archivePath, err)
			}
			return res, fmt.Errorf("%s: archive %q: %w", cmd, spec.archivePath, err)
		}
		m.Size, m.Digest, m.FragmentSize = info.Size, info.Digest, spec.fragSize
		m.Fragments = make([]string, len(info.Fragments))
		for i, c := range info.Fragments {
			m.Fragments[i] = c.String()
		}
		spec.log.Debug("archive chunked", "archive", spec.archivePath, "size", info.Size,
			"fragments", len(info.Fragments), "took", time.Since(start))
	}

	id, data, err := m.ID()
	if err != nil {
		return res, usageErrorf("%s: %w", cmd, err)
	}
	if err := st.Put(id, data); err != nil {
		return res, fmt.Errorf("%s: store manifest %s: %w", cmd, id, err)
	}
	if err := st.Pin(pinOwner(id), append(frags, id)...); err != nil {
		return res, fmt.Errorf("%s: pin package %s: %w", cmd, id, err)
	}
	if err := st.Close(); err != nil {
		return res, fmt.Errorf("%s: close store %q: %w", cmd, spec.storeDir, err)
	}
	if err := core.WriteFileAtomic(spec.out, data, 0o644); err != nil {
		return res, fmt.Errorf("%s: write manifest %q: %w", cmd, spec.out, err)
	}
	spec.log.Debug("package built", "id", id, "manifest", spec.out)
	return buildResult{id: id, manifest: &m}, nil
}

// ctxReader fails reads once ctx is done, so an interrupt stops a long
// chunking run at the next read.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// newProgressBar is a byte progress bar on w (a terminal).
func newProgressBar(w io.Writer, total int64, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetPredictTime(true),
	)
}

// fragWriter writes fragments to the store on its own goroutine, so disk
// writes overlap with hashing. Chunk computed each CID from the very bytes
// handed over, so they are stored without hashing them a third time.
type fragWriter struct {
	work chan fragJob
	free chan []byte
	done chan struct{}
	mu   sync.Mutex
	err  error // first store error
}

type fragJob struct {
	c    cid.Cid
	data []byte
}

func newFragWriter(st *dirStore, size int) *fragWriter {
	const depth = 3
	w := &fragWriter{work: make(chan fragJob, depth), free: make(chan []byte, depth+1), done: make(chan struct{})}
	for range depth + 1 {
		w.free <- make([]byte, 0, size)
	}
	go func() {
		defer close(w.done)
		for j := range w.work {
			if w.failed() == nil {
				if err := st.putTrusted(j.c, j.data); err != nil {
					w.mu.Lock()
					w.err = err
					w.mu.Unlock()
				}
			}
			w.free <- j.data[:0]
		}
	}()
	return w
}

func (w *fragWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// write queues a copy of data; it returns an earlier write's error, which
// stops the chunking.
func (w *fragWriter) write(c cid.Cid, data []byte) error {
	if err := w.failed(); err != nil {
		return err
	}
	buf := append(<-w.free, data...)
	w.work <- fragJob{c, buf}
	return nil
}

// close waits for the queued writes and returns the first error.
func (w *fragWriter) close() error {
	close(w.work)
	<-w.done
	return w.failed()
}
