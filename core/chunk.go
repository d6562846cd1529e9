package core

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-cid"
)

// Fragment size limits.
const (
	DefaultFragmentSize = 1 << 20
	MinFragmentSize     = 64 << 10
	MaxFragmentSize     = 64 << 20
)

// ArchiveInfo describes an archive cut into fragments.
type ArchiveInfo struct {
	Size      int64
	Digest    string // "sha256:" + hex of the whole archive
	Fragments []cid.Cid
}

// CheckFragmentSize reports whether n is an allowed fragment size.
func CheckFragmentSize(n int) error {
	if n < MinFragmentSize || n > MaxFragmentSize {
		return fmt.Errorf("%w: fragment size %d: must be between 64KiB and 64MiB", ErrFragmentSize, n)
	}
	return nil
}

// Chunk reads r to its end, cuts it into fragments of fragSize bytes (the
// last may be shorter) and calls emit for each, in order, with the fragment's
// CID and bytes. data is only valid during the call. The archive's sha256 is
// computed on one goroutine while the fragment CIDs are computed on another,
// so on two cores hashing twice costs about as much as hashing once. Memory
// stays at a few fragment buffers whatever the archive's size.
func Chunk(r io.Reader, fragSize int, emit func(c cid.Cid, data []byte) error) (ArchiveInfo, error) {
	if err := CheckFragmentSize(fragSize); err != nil {
		return ArchiveInfo{}, err
	}
	const nbuf = 3
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, fragSize)
	}
	type job struct {
		buf  []byte
		n    int
		left atomic.Int32 // consumers still using buf
	}
	done := func(j *job) {
		if j.left.Add(-1) == 0 {
			free <- j.buf // never blocks: free holds every buffer
		}
	}
	whole := make(chan *job, nbuf)
	frags := make(chan *job, nbuf)

	var (
		info     ArchiveInfo
		digest   hash.Hash = sha256.New()
		wg       sync.WaitGroup
		emitErr  error
		stopOnce sync.Once
		stop     = make(chan struct{})
	)
	fail := func(err error) {
		stopOnce.Do(func() { emitErr = err; close(stop) })
	}
	wg.Add(2)
	go func() { // whole-archive digest
		defer wg.Done()
		for j := range whole {
			digest.Write(j.buf[:j.n])
			done(j)
		}
	}()
	go func() { // fragment CIDs, emitted in order
		defer wg.Done()
		for j := range frags {
			select {
			case <-stop:
			default:
				c := FragmentCID(j.buf[:j.n])
				info.Fragments = append(info.Fragments, c)
				if err := emit(c, j.buf[:j.n]); err != nil {
					fail(err)
				}
			}
			done(j)
		}
	}()

	var readErr error
	for {
		var buf []byte
		select {
		case buf = <-free:
		case <-stop:
		}
		if buf == nil {
			break
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			info.Size += int64(n)
			j := &job{buf: buf, n: n}
			j.left.Store(2)
			whole <- j
			frags <- j
		} else {
			free <- buf
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("core: read archive: %w", err)
			break
		}
	}
	close(whole)
	close(frags)
	wg.Wait()
	if readErr != nil {
		return ArchiveInfo{}, readErr
	}
	if emitErr != nil {
		return ArchiveInfo{}, emitErr
	}
	if info.Size == 0 {
		return ArchiveInfo{}, ErrEmptyArchive
	}
	info.Digest = "sha256:" + hex.EncodeToString(digest.Sum(nil))
	return info, nil
}
