package core

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// FragmentCID returns the CID of data: CIDv1, raw codec, sha2-256.
func FragmentCID(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	return cidFromDigest(sum[:])
}

func cidFromDigest(digest []byte) cid.Cid {
	// Encoding a 32-byte sha2-256 digest cannot fail.
	h, err := mh.Encode(digest, mh.SHA2_256)
	if err != nil {
		panic(fmt.Sprintf("core: encode multihash: %v", err))
	}
	return cid.NewCidV1(cid.Raw, h)
}

// CheckCID accepts only the CIDs relaymesh addresses content with:
// CIDv1, raw codec, sha2-256 with a 32-byte digest. Identity and every
// other multihash are refused, since they would let a peer choose the bytes.
func CheckCID(c cid.Cid) error {
	if !c.Defined() {
		return fmt.Errorf("%w: empty CID", ErrBadCID)
	}
	if c.Version() != 1 {
		return fmt.Errorf("%w: %s: version %d, want CIDv1", ErrBadCID, c, c.Version())
	}
	if c.Type() != cid.Raw {
		return fmt.Errorf("%w: %s: codec 0x%x, want raw (0x55)", ErrBadCID, c, c.Type())
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadCID, c, err)
	}
	if dec.Code != mh.SHA2_256 {
		return fmt.Errorf("%w: %s: hash %s, want sha2-256", ErrBadCID, c, mh.Codes[dec.Code])
	}
	if dec.Length != sha256.Size || len(dec.Digest) != sha256.Size {
		return fmt.Errorf("%w: %s: digest length %d, want 32", ErrBadCID, c, dec.Length)
	}
	return nil
}

// ParseCID parses s and applies CheckCID.
func ParseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %q: %w", ErrBadCID, s, err)
	}
	if err := CheckCID(c); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

// VerifyBytes checks that data is exactly the content c names.
func VerifyBytes(c cid.Cid, data []byte) error {
	if err := CheckCID(c); err != nil {
		return err
	}
	dec, _ := mh.Decode(c.Hash()) // CheckCID decoded it already
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], dec.Digest) {
		return fmt.Errorf("%w: %s: %d bytes hash to %x", ErrDigestMismatch, c, len(data), sum[:6])
	}
	return nil
}

// DigestOf returns the sha2-256 digest inside a CID that passed CheckCID.
func DigestOf(c cid.Cid) ([]byte, error) {
	if err := CheckCID(c); err != nil {
		return nil, err
	}
	dec, _ := mh.Decode(c.Hash())
	return dec.Digest, nil
}
