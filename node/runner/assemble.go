package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// archiveReader reads m's archive from its fragments, in manifest order,
// holding one fragment in memory. Every fragment is checked against its
// CID and length before a byte of it is returned (the store should have
// done it, but a wrong byte here would be installed); at the end the whole
// is checked against m.Size and m.Digest, and a mismatch is returned
// instead of io.EOF. A fragment that cannot be had is ErrBuild; bytes that
// do not match are ErrDigest; ctx ending returns ctx's error. When frags is
// a Refetcher, a fragment that fails either way is fetched again once
// first. After an error, err holds it: a reader above (gzip, tar) may wrap
// or drop it, and the caller reports this one.
type archiveReader struct {
	ctx   context.Context
	frags Fragments
	m     *core.Manifest
	next  int    // next fragment to load
	cur   []byte // unread part of the current fragment
	sum   hash.Hash
	size  int64
	err   error
}

func newArchiveReader(ctx context.Context, frags Fragments, m *core.Manifest) *archiveReader {
	return &archiveReader{ctx: ctx, frags: frags, m: m, sum: sha256.New()}
}

func (a *archiveReader) Read(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	for len(a.cur) == 0 {
		if a.next == len(a.m.Fragments) {
			a.err = a.finish()
			return 0, a.err
		}
		data, err := a.load(a.next)
		if err != nil {
			a.err = err
			return 0, err
		}
		a.sum.Write(data)
		a.size += int64(len(data))
		a.cur = data
		a.next++
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// finish checks the whole archive; io.EOF when it matches.
func (a *archiveReader) finish() error {
	if a.size != a.m.Size {
		return fmt.Errorf("%w: reassembled %d bytes, manifest says %d", ErrDigest, a.size, a.m.Size)
	}
	if got := "sha256:" + hex.EncodeToString(a.sum.Sum(nil)); got != a.m.Digest {
		return fmt.Errorf("%w: archive digest %s, manifest says %s", ErrDigest, got, a.m.Digest)
	}
	return io.EOF
}

// load returns fragment i, checked, fetching it again once if it fails.
func (a *archiveReader) load(i int) ([]byte, error) {
	if err := a.ctx.Err(); err != nil {
		return nil, err
	}
	m := a.m
	c, err := core.ParseCID(m.Fragments[i])
	if err != nil {
		return nil, fmt.Errorf("%w: fragment %d: %w", ErrDigest, i, err)
	}
	data, err := fragment(a.frags, m, i, c)
	if err != nil && a.ctx.Err() == nil {
		// A fragment the store lost or holds wrong (a flipped byte in
		// its value log) is dropped and fetched again from the mesh,
		// once; only bytes that fail again fail the job.
		if rf, ok := a.frags.(Refetcher); ok {
			if rerr := rf.Refetch(a.ctx, c, m.FragmentLen(i)); rerr != nil {
				err = fmt.Errorf("%w (fetching it again failed: %v)", err, rerr)
			} else if data, err = fragment(a.frags, m, i, c); err != nil {
				err = fmt.Errorf("%w (after fetching it again)", err)
			}
		}
	}
	if err != nil {
		if cerr := a.ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	return data, nil
}

// failed is the reader's own error, if it had one, else io.EOF's absence
// as nil: what to report when a reader above it failed.
func (a *archiveReader) failed() error {
	if a.err == io.EOF {
		return nil
	}
	return a.err
}

// assemble writes m's archive to the new file path through an
// archiveReader (so with all its checks).
func assemble(ctx context.Context, frags Fragments, m *core.Manifest, path string) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBuild, err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%w: %w", ErrBuild, cerr)
		}
	}()
	a := newArchiveReader(ctx, frags, m)
	if _, err := io.Copy(f, a); err != nil {
		if aerr := a.failed(); aerr != nil {
			return aerr
		}
		return fmt.Errorf("%w: %w", ErrBuild, err)
	}
	return nil
}

// fragment returns fragment i (CID c) of m from frags, checked against its
// length and its CID (by frags itself when it is VerifiedFragments, else
// here): ErrBuild if it cannot be had, ErrDigest if its bytes are wrong.
func fragment(frags Fragments, m *core.Manifest, i int, c cid.Cid) ([]byte, error) {
	var (
		data   []byte
		err    error
		hashed bool
	)
	if vf, ok := frags.(VerifiedFragments); ok {
		var v core.Verified
		if v, err = vf.GetVerified(c); err == nil {
			if !v.CID().Equals(c) {
				return nil, fmt.Errorf("%w: fragment %d of %d: store answered %s for %s", ErrDigest, i+1, len(m.Fragments), v.CID(), c)
			}
			data, hashed = v.Bytes(), true
		}
	} else {
		data, err = frags.Get(c)
	}
	if err != nil {
		if errors.Is(err, core.ErrDigestMismatch) {
			return nil, fmt.Errorf("%w: fragment %d of %d (%s): %w", ErrDigest, i+1, len(m.Fragments), c, err)
		}
		return nil, fmt.Errorf("%w: fragment %d of %d (%s): %w", ErrBuild, i+1, len(m.Fragments), c, err)
	}
	if want := m.FragmentLen(i); int64(len(data)) != want {
		return nil, fmt.Errorf("%w: fragment %d of %d (%s): %d bytes, manifest says %d", ErrDigest, i+1, len(m.Fragments), c, len(data), want)
	}
	if !hashed {
		if err := core.VerifyBytes(c, data); err != nil {
			return nil, fmt.Errorf("%w: fragment %d of %d: %w", ErrDigest, i+1, len(m.Fragments), err)
		}
	}
	return data, nil
}
