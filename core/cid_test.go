package core

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	mbase "github.com/multiformats/go-multibase"
	mh "github.com/multiformats/go-multihash"
)

func mustMH(t testing.TB, digest []byte, code uint64) mh.Multihash {
	t.Helper()
	h, err := mh.Encode(digest, code)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustSum(t testing.TB, data []byte, code uint64, length int) mh.Multihash {
	t.Helper()
	h, err := mh.Sum(data, code, length)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCheckCID(t *testing.T) {
	t.Parallel()
	data := []byte("relaymesh fragment")
	sum := sha256.Sum256(data)
	tests := []struct {
		name string
		c    cid.Cid
		msg  string // "" for accepted
	}{
		{"fragment CID", FragmentCID(data), ""},
		{"fragment CID of no bytes", FragmentCID(nil), ""},
		{"built by hand", cid.NewCidV1(cid.Raw, mustSum(t, data, mh.SHA2_256, -1)), ""},
		{"undefined", cid.Undef, "empty CID"},
		{"CIDv0", cid.NewCidV0(mustMH(t, sum[:], mh.SHA2_256)), "version 0"},
		{"dag-pb codec", cid.NewCidV1(cid.DagProtobuf, mustMH(t, sum[:], mh.SHA2_256)), "codec 0x70"},
		{"dag-cbor codec", cid.NewCidV1(cid.DagCBOR, mustMH(t, sum[:], mh.SHA2_256)), "codec 0x71"},
		{"identity", cid.NewCidV1(cid.Raw, mustMH(t, data, mh.IDENTITY)), "hash identity"},
		{"identity with 32 bytes", cid.NewCidV1(cid.Raw, mustMH(t, sum[:], mh.IDENTITY)), "hash identity"},
		{"sha2-512", cid.NewCidV1(cid.Raw, mustSum(t, data, mh.SHA2_512, -1)), "hash sha2-512"},
		{"sha2-512 truncated to 32", cid.NewCidV1(cid.Raw, mustSum(t, data, mh.SHA2_512, 32)), "hash sha2-512"},
		{"sha3-256", cid.NewCidV1(cid.Raw, mustMH(t, sum[:], mh.SHA3_256)), "hash sha3-256"},
		{"sha2-256 truncated by Sum", cid.NewCidV1(cid.Raw, mustSum(t, data, mh.SHA2_256, 20)), "digest length 20"},
		{"sha2-256 short digest", cid.NewCidV1(cid.Raw, mustMH(t, sum[:16], mh.SHA2_256)), "digest length 16"},
		{"sha2-256 empty digest", cid.NewCidV1(cid.Raw, mustMH(t, nil, mh.SHA2_256)), "digest length 0"},
		{"sha2-256 long digest", cid.NewCidV1(cid.Raw, mustMH(t, append(sum[:], 0), mh.SHA2_256)), "digest length 33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckCID(tt.c)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("CheckCID(%s) = %v, want nil", tt.c, err)
				}
				back, err := ParseCID(tt.c.String())
				if err != nil || !back.Equals(tt.c) {
					t.Fatalf("ParseCID(%s) = %s, %v", tt.c, back, err)
				}
				d, err := DigestOf(tt.c)
				if err != nil || len(d) != sha256.Size {
					t.Fatalf("DigestOf = %x, %v", d, err)
				}
				return
			}
			checkErr(t, err, ErrBadCID, tt.msg)
			// The same refusal through every entry point.
			if tt.c.Defined() {
				_, err = ParseCID(tt.c.String())
				checkErr(t, err, ErrBadCID, tt.msg)
			}
			checkErr(t, VerifyBytes(tt.c, data), ErrBadCID, tt.msg)
			_, err = DigestOf(tt.c)
			checkErr(t, err, ErrBadCID)
		})
	}
}

func TestParseCID(t *testing.T) {
	t.Parallel()
	good := FragmentCID([]byte("x"))
	s := good.String()
	b58, err := good.StringOfBase(mbase.Base58BTC)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"canonical base32", s, true},
		{"base58 of the same CID", b58, true},
		{"empty", "", false},
		{"word", "hello", false},
		{"multibase prefix only", "b", false},
		{"truncated", s[:len(s)-1], false},
		{"half", s[:len(s)/2], false},
		{"leading space", " " + s, false},
		{"extra character", s + "a", false},
		{"binary CID as string", string(good.Bytes()), false},
		{"CIDv0 string", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", false},
		{"NUL", "b\x00", false},
		{"invalid UTF-8", "b\xff\xfe", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseCID(tt.in)
			if tt.ok {
				if err != nil || !c.Equals(good) {
					t.Fatalf("ParseCID(%q) = %s, %v; want %s", tt.in, c, err, good)
				}
				return
			}
			checkErr(t, err, ErrBadCID)
			if c.Defined() {
				t.Errorf("ParseCID(%q) returned %s with its error", tt.in, c)
			}
		})
	}
}

func TestVerifyBytes(t *testing.T) {
	t.Parallel()
	data := randomBytes(4096, 7)
	c := FragmentCID(data)
	flipped := func(i int) []byte {
		b := bytes.Clone(data)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name string
		c    cid.Cid
		data []byte
		want error
	}{
		{"exact bytes", c, data, nil},
		{"empty content", FragmentCID(nil), nil, nil},
		{"first byte flipped", c, flipped(0), ErrDigestMismatch},
		{"middle byte flipped", c, flipped(2048), ErrDigestMismatch},
		{"last byte flipped", c, flipped(len(data) - 1), ErrDigestMismatch},
		{"one byte short", c, data[:len(data)-1], ErrDigestMismatch},
		{"one byte more", c, append(bytes.Clone(data), 0), ErrDigestMismatch},
		{"nothing", c, nil, ErrDigestMismatch},
		{"undefined CID", cid.Undef, data, ErrBadCID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifyBytes(tt.c, tt.data)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifyBytes = %v", err)
				}
				return
			}
			checkErr(t, err, tt.want)
			if tt.want == ErrDigestMismatch && !bytes.Contains([]byte(err.Error()), []byte(tt.c.String())) {
				t.Errorf("error %q does not name the CID", err)
			}
		})
	}
}

func TestFragmentCIDMatchesSHA256(t *testing.T) {
	t.Parallel()
	data := []byte("abc")
	c := FragmentCID(data)
	if c.Version() != 1 || c.Type() != cid.Raw {
		t.Fatalf("FragmentCID = %s: version %d codec %x", c, c.Version(), c.Type())
	}
	dec, err := mh.Decode(c.Hash())
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if dec.Code != mh.SHA2_256 || !bytes.Equal(dec.Digest, want[:]) {
		t.Fatalf("digest %x code %x, want sha2-256 %x", dec.Digest, dec.Code, want)
	}
	// The well-known CIDv1 raw of "abc".
	if got, want := c.String(), "bafkreif2pall7dybz7vecqka3zo24irdwabwdi4wc55jznaq75q7eaavvu"; got != want {
		t.Errorf("FragmentCID(abc) = %s, want %s", got, want)
	}
}
