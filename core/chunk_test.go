package core

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// fragment is one emit call, its bytes copied.
type fragment struct {
	c    cid.Cid
	data []byte
}

func chunkAll(t testing.TB, r io.Reader, fragSize int) (ArchiveInfo, []fragment, error) {
	t.Helper()
	var got []fragment
	info, err := Chunk(r, fragSize, func(c cid.Cid, data []byte) error {
		got = append(got, fragment{c, bytes.Clone(data)})
		return nil
	})
	return info, got, err
}

// checkChunks compares Chunk's result with a computation over data that
// uses crypto/sha256 and nothing of the package under test.
func checkChunks(t testing.TB, data []byte, fragSize int, info ArchiveInfo, got []fragment) {
	t.Helper()
	whole := sha256.Sum256(data)
	if want := "sha256:" + hex.EncodeToString(whole[:]); info.Digest != want {
		t.Errorf("digest = %s, want %s", info.Digest, want)
	}
	if info.Size != int64(len(data)) {
		t.Errorf("size = %d, want %d", info.Size, len(data))
	}
	n := (len(data) + fragSize - 1) / fragSize
	if len(got) != n || len(info.Fragments) != n {
		t.Fatalf("%d fragments emitted, %d listed, want %d", len(got), len(info.Fragments), n)
	}
	for i := range n {
		piece := data[i*fragSize : min((i+1)*fragSize, len(data))]
		if !bytes.Equal(got[i].data, piece) {
			t.Fatalf("fragment %d: emitted %d bytes that differ from bytes [%d, %d)", i, len(got[i].data), i*fragSize, i*fragSize+len(piece))
		}
		c := info.Fragments[i]
		if !c.Equals(got[i].c) {
			t.Fatalf("fragment %d: listed %s, emitted %s", i, c, got[i].c)
		}
		if c.Version() != 1 || c.Type() != cid.Raw {
			t.Fatalf("fragment %d: %s is not CIDv1 raw", i, c)
		}
		dec, err := mh.Decode(c.Hash())
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(piece)
		if dec.Code != mh.SHA2_256 || !bytes.Equal(dec.Digest, sum[:]) {
			t.Fatalf("fragment %d: %s holds %x, want sha2-256 %x", i, c, dec.Digest, sum)
		}
	}
}

func TestChunk(t *testing.T) {
	t.Parallel()
	const fs = MinFragmentSize
	sizes := []struct {
		name     string
		size     int
		fragSize int
	}{
		{"1 byte", 1, fs},
		{"just under one fragment", fs - 1, fs},
		{"exactly one fragment", fs, fs},
		{"one fragment and 1 byte", fs + 1, fs},
		{"exact multiple", 5 * fs, fs},
		{"many fragments", 7*fs + 12345, fs},
		{"default fragment size", 3*DefaultFragmentSize + 1, DefaultFragmentSize},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"half reads", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
		{"odd sizes", func(r io.Reader) io.Reader { return &jaggedReader{r: r} }},
	}
	for i, sz := range sizes {
		data := randomBytes(sz.size, byte(i))
		for _, rd := range readers {
			t.Run(fmt.Sprintf("%s/%s", sz.name, rd.name), func(t *testing.T) {
				t.Parallel()
				info, got, err := chunkAll(t, rd.wrap(bytes.NewReader(data)), sz.fragSize)
				if err != nil {
					t.Fatalf("Chunk: %v", err)
				}
				checkChunks(t, data, sz.fragSize, info, got)
			})
		}
	}
}

// jaggedReader returns reads of 1, 2, 3 ... 4099 bytes, over and over.
type jaggedReader struct {
	r io.Reader
	n int
}

func (j *jaggedReader) Read(p []byte) (int, error) {
	j.n = j.n%4099 + 1
	return j.r.Read(p[:min(len(p), j.n)])
}

func TestChunkOneByteReads(t *testing.T) {
	t.Parallel()
	data := randomBytes(2*MinFragmentSize+3, 9)
	info, got, err := chunkAll(t, iotest.OneByteReader(bytes.NewReader(data)), MinFragmentSize)
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, data, MinFragmentSize, info, got)
}

func TestChunkEmpty(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]io.Reader{
		"empty reader":     bytes.NewReader(nil),
		"EOF with no data": iotest.DataErrReader(bytes.NewReader(nil)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			info, got, err := chunkAll(t, r, MinFragmentSize)
			checkErr(t, err, ErrEmptyArchive)
			if len(got) != 0 || info.Size != 0 || info.Digest != "" || info.Fragments != nil {
				t.Errorf("empty archive: %d emits, info %+v", len(got), info)
			}
		})
	}
}

func TestChunkFragmentSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1, 1, 4096, MinFragmentSize - 1, MaxFragmentSize + 1, 1 << 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			r := &countingReader{r: bytes.NewReader([]byte("data"))}
			calls := 0
			_, err := Chunk(r, n, func(cid.Cid, []byte) error { calls++; return nil })
			checkErr(t, err, ErrFragmentSize, fmt.Sprintf("fragment size %d", n), "64KiB", "64MiB")
			if calls != 0 || r.n != 0 {
				t.Errorf("refused fragment size: %d emits, %d bytes read", calls, r.n)
			}
			checkErr(t, CheckFragmentSize(n), ErrFragmentSize, fmt.Sprint(n))
		})
	}
	for _, n := range []int{MinFragmentSize, DefaultFragmentSize, MaxFragmentSize} {
		if err := CheckFragmentSize(n); err != nil {
			t.Errorf("CheckFragmentSize(%d) = %v", n, err)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

var errBoom = errors.New("boom")

func TestChunkEmitError(t *testing.T) {
	t.Parallel()
	const fs = MinFragmentSize
	tests := []struct {
		name   string
		frags  int
		failAt int // 1-based emit call that fails
	}{
		{"first of one", 1, 1},
		{"first of many", 200, 1},
		{"third of many", 200, 3},
		{"last", 5, 5},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			data := randomBytes(tt.frags*fs, byte(i))
			r := &countingReader{r: bytes.NewReader(data)}
			calls := 0
			info, err := Chunk(r, fs, func(c cid.Cid, d []byte) error {
				calls++
				if calls == tt.failAt {
					return fmt.Errorf("store fragment %s: %w", c, errBoom)
				}
				return nil
			})
			checkErr(t, err, errBoom, "store fragment")
			if calls != tt.failAt {
				t.Errorf("emit called %d times after failing at call %d", calls, tt.failAt)
			}
			if info.Size != 0 || info.Digest != "" || info.Fragments != nil {
				t.Errorf("failed Chunk returned info %+v", info)
			}
			// A few buffers may be read ahead, not the whole archive.
			if tt.frags >= 100 && r.n == len(data) {
				t.Errorf("read all %d bytes after emit failed", r.n)
			}
		})
	}
}

var errDisk = errors.New("disk on fire")

func TestChunkReadError(t *testing.T) {
	t.Parallel()
	const fs = MinFragmentSize
	data := randomBytes(5*fs, 4)
	tests := []struct {
		name  string
		r     io.Reader
		emits int // at most: bytes read before the error may still be emitted
	}{
		{"at once", iotest.ErrReader(errDisk), 0},
		{"mid fragment", io.MultiReader(bytes.NewReader(data[:2*fs+fs/2]), iotest.ErrReader(errDisk)), 3},
		{"on a fragment boundary", io.MultiReader(bytes.NewReader(data[:3*fs]), iotest.ErrReader(errDisk)), 3},
		{"with the data", &errWithDataReader{data: data[:fs+7], err: errDisk}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			info, got, err := chunkAll(t, tt.r, fs)
			checkErr(t, err, errDisk, "read archive")
			if len(got) > tt.emits {
				t.Errorf("%d emits, want at most %d", len(got), tt.emits)
			}
			if info.Size != 0 || info.Digest != "" || info.Fragments != nil {
				t.Errorf("failed Chunk returned info %+v", info)
			}
		})
	}
}

// errWithDataReader returns all its data and err in one call.
type errWithDataReader struct {
	data []byte
	err  error
}

func (e *errWithDataReader) Read(p []byte) (int, error) {
	n := copy(p, e.data)
	e.data = e.data[n:]
	if len(e.data) == 0 {
		return n, e.err
	}
	return n, nil
}

// TestChunkEmitSeesStableBytes checks that a fragment's bytes are not
// overwritten by the reader while emit still looks at them.
func TestChunkEmitSeesStableBytes(t *testing.T) {
	t.Parallel()
	data := randomBytes(40*MinFragmentSize, 5)
	i := 0
	_, err := Chunk(bytes.NewReader(data), MinFragmentSize, func(c cid.Cid, d []byte) error {
		want := data[i*MinFragmentSize : (i+1)*MinFragmentSize]
		if !bytes.Equal(d, want) {
			return fmt.Errorf("fragment %d changed", i)
		}
		// Let the reader run ahead, then look again.
		if err := VerifyBytes(c, d); err != nil {
			return err
		}
		if !bytes.Equal(d, want) {
			return fmt.Errorf("fragment %d changed during emit", i)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
