package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// assemble writes m's archive to the new file path, fragment by fragment in
// manifest order, so at most one fragment is in memory. Every fragment is
// checked against its CID and length (the store should have done it, but a
// wrong byte here would be installed), and the whole against m.Size and
// m.Digest. A fragment that cannot be had is ErrBuild; bytes that do not
// match are ErrDigest; ctx ending returns ctx's error. When frags is a
// Refetcher, a fragment that fails either way is fetched again once first.
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
	var (
		sum  hash.Hash = sha256.New()
		size int64
	)
	for i, s := range m.Fragments {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := core.ParseCID(s)
		if err != nil {
			return fmt.Errorf("%w: fragment %d: %w", ErrDigest, i, err)
		}
		data, err := fragment(frags, m, i, c)
		if err != nil && ctx.Err() == nil {
			// A fragment the store lost or holds wrong (a flipped byte in
			// its value log) is dropped and fetched again from the mesh,
			// once; only bytes that fail again fail the job.
			if rf, ok := frags.(Refetcher); ok {
				if rerr := rf.Refetch(ctx, c, m.FragmentLen(i)); rerr != nil {
					err = fmt.Errorf("%w (fetching it again failed: %v)", err, rerr)
				} else if data, err = fragment(frags, m, i, c); err != nil {
					err = fmt.Errorf("%w (after fetching it again)", err)
				}
			}
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return err
		}
		sum.Write(data)
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("%w: %w", ErrBuild, err)
		}
		size += int64(len(data))
	}
	if size != m.Size {
		return fmt.Errorf("%w: reassembled %d bytes, manifest says %d", ErrDigest, size, m.Size)
	}
	if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != m.Digest {
		return fmt.Errorf("%w: archive digest %s, manifest says %s", ErrDigest, got, m.Digest)
	}
	return nil
}

// fragment returns fragment i (CID c) of m from frags, checked against its
// length and its CID: ErrBuild if it cannot be had, ErrDigest if its bytes
// are wrong.
func fragment(frags Fragments, m *core.Manifest, i int, c cid.Cid) ([]byte, error) {
	data, err := frags.Get(c)
	if err != nil {
		return nil, fmt.Errorf("%w: fragment %d of %d (%s): %w", ErrBuild, i+1, len(m.Fragments), c, err)
	}
	if want := m.FragmentLen(i); int64(len(data)) != want {
		return nil, fmt.Errorf("%w: fragment %d of %d (%s): %d bytes, manifest says %d", ErrDigest, i+1, len(m.Fragments), c, len(data), want)
	}
	if err := core.VerifyBytes(c, data); err != nil {
		return nil, fmt.Errorf("%w: fragment %d of %d: %w", ErrDigest, i+1, len(m.Fragments), err)
	}
	return data, nil
}
