package core

import (
	"bytes"

	"github.com/ipfs/go-cid"
)

// Verified is a fragment's bytes that were hashed against its CID. Only
// Verify makes one, so a store handed a Verified need not hash the same
// bytes a second time (a fetched fragment was hashed as it arrived). The
// bytes must not be written to afterwards.
type Verified struct {
	c    cid.Cid
	data []byte
}

// Verify hashes data against c (VerifyBytes) and, when they match,
// returns them as Verified.
func Verify(c cid.Cid, data []byte) (Verified, error) {
	if err := VerifyBytes(c, data); err != nil {
		return Verified{}, err
	}
	return Verified{c: c, data: data}, nil
}

// CID returns the fragment's CID.
func (v Verified) CID() cid.Cid { return v.c }

// Bytes returns the verified bytes (not a copy).
func (v Verified) Bytes() []byte { return v.data }

// Clone returns a Verified holding a copy of v's bytes: a copy of bytes
// that matched their CID matches it too.
func (v Verified) Clone() Verified { return Verified{c: v.c, data: bytes.Clone(v.data)} }
