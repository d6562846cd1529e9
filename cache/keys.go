package cache

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"
)

// Key layout of the badger database. Each area has its own prefix so that
// fragments, their sizes, pins and the KV never share a key.
//
//	f/<cid bytes>                       fragment bytes
//	s/<cid bytes>                       fragment size, 8 bytes big endian
//	p/<uvarint len(owner)><owner><cid>  pin, empty value
//	k/<key>                             KV value
var (
	fragPrefix = []byte("f/")
	sizePrefix = []byte("s/")
	pinPrefix  = []byte("p/")
	kvPrefix   = []byte("k/")
)

func withPrefix(prefix []byte, rest ...[]byte) []byte {
	n := len(prefix)
	for _, r := range rest {
		n += len(r)
	}
	k := make([]byte, 0, n)
	k = append(k, prefix...)
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

func fragKey(c cid.Cid) []byte { return withPrefix(fragPrefix, c.Bytes()) }
func sizeKey(c cid.Cid) []byte { return withPrefix(sizePrefix, c.Bytes()) }
func kvKey(key string) []byte  { return withPrefix(kvPrefix, []byte(key)) }

// pinOwnerPrefix is the prefix of every pin key of owner. The length prefix
// keeps owner "a" from matching owner "ab".
func pinOwnerPrefix(owner string) []byte {
	return withPrefix(binary.AppendUvarint(pinPrefix, uint64(len(owner))), []byte(owner))
}

func pinKey(owner string, c cid.Cid) []byte {
	return withPrefix(pinOwnerPrefix(owner), c.Bytes())
}

func parsePinKey(k []byte) (string, cid.Cid, error) {
	rest := k[len(pinPrefix):]
	n, w := binary.Uvarint(rest)
	if w <= 0 || uint64(len(rest)-w) < n {
		return "", cid.Undef, fmt.Errorf("%w: pin key %x", ErrCorruptDB, k)
	}
	rest = rest[w:]
	owner := string(rest[:n])
	c, err := cid.Cast(rest[n:])
	if err != nil {
		return "", cid.Undef, fmt.Errorf("%w: pin key %x: %w", ErrCorruptDB, k, err)
	}
	return owner, c, nil
}

func parseSize(k, v []byte) (cid.Cid, int64, error) {
	c, err := cid.Cast(k[len(sizePrefix):])
	if err != nil {
		return cid.Undef, 0, fmt.Errorf("%w: size key %x: %w", ErrCorruptDB, k, err)
	}
	if len(v) != 8 {
		return cid.Undef, 0, fmt.Errorf("%w: size of %s: %d bytes, want 8", ErrCorruptDB, c, len(v))
	}
	return c, int64(binary.BigEndian.Uint64(v)), nil
}

func encodeSize(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }
