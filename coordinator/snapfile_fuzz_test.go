package coordinator

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"
)

func smallSnapshot(t testing.TB) []byte {
	t.Helper()
	var b bytes.Buffer
	sw := newSnapWriter(&b)
	if err := sw.header(SnapshotInfo{Created: time.Unix(1, 0).UTC(), PeerID: "12D3KooW", OrderKey: "k", Keys: true}); err != nil {
		t.Fatal(err)
	}
	if err := sw.file(FileConfig, []byte("listen: []\n")); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"k/meta/order-seq", "\x00\x00\x00\x00\x00\x00\x00\x07"}, {"k/n/x", `{"id":"x"}`}} {
		if err := sw.entry([]byte(kv[0]), []byte(kv[1])); err != nil {
			t.Fatal(err)
		}
	}
	if err := sw.end(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// FuzzSnapshotReader: the reader of snapshot files (from disk, or the
// admin API's stream) never panics, and refuses what it does not read to
// a checked end with ErrBadSnapshot.
func FuzzSnapshotReader(f *testing.F) {
	good := smallSnapshot(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte(snapMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		sr, err := newSnapReader(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("refused without ErrBadSnapshot: %v", err)
			}
			return
		}
		for i := 0; ; i++ {
			_, _, _, err := sr.next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrBadSnapshot) {
					t.Fatalf("frame %d refused without ErrBadSnapshot: %v", i, err)
				}
				return
			}
		}
	})
}

func TestSmallSnapshotReads(t *testing.T) {
	t.Parallel()
	sr, err := newSnapReader(bytes.NewReader(smallSnapshot(t)))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, _, _, err := sr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 || sr.info.Files != 1 || sr.info.Entries != 2 {
		t.Errorf("read %d frames, info %+v", n, sr.info)
	}
}
