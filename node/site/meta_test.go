package site

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func sampleMeta() Meta {
	return Meta{
		NodeID:         "12D3KooWGzRhnqDiqpvRbrNkS7ZUUPMXCgSL3tCRJFEYb3Jh5Xyv",
		Site:           "paris-plant-2",
		P2PAddr:        "/ip4/127.0.0.1/tcp/4001",
		UpBps:          12_500_000,
		DownBps:        125_000_000,
		MeasuredBps:    9_000_000,
		RelayEligible:  true,
		FreeCacheBytes: 50 << 30,
		StartedAt:      1_760_000_000,
		Version:        "v0.3.1",
	}
}

func TestMetaRoundTrip(t *testing.T) {
	t.Parallel()
	big := Meta{
		NodeID:         strings.Repeat("z", maxNodeIDLen),
		Site:           strings.Repeat("s", maxSiteLen),
		P2PAddr:        "/dns4/" + strings.Repeat("h", maxP2PAddrLen-15) + "/tcp/4001",
		UpBps:          ^uint64(0),
		DownBps:        ^uint64(0),
		MeasuredBps:    ^uint64(0),
		RelayEligible:  true,
		RelayClaim:     true,
		FreeCacheBytes: ^uint64(0),
		StartedAt:      -1 << 63,
		Version:        strings.Repeat("v", maxVersionLen),
	}
	for name, m := range map[string]Meta{
		"sample":  sampleMeta(),
		"minimal": {NodeID: "a", Site: "b"},
		"largest": big,
		"distrust": func() Meta {
			m := sampleMeta()
			m.Distrust = []string{"12D3KooWBadPeer1", "12D3KooWBadPeer2"}
			return m
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, err := EncodeMeta(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > MetaMaxSize {
				t.Fatalf("encoded %d bytes", len(b))
			}
			got, err := DecodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(m) {
				t.Fatalf("got %+v, want %+v", got, m)
			}
		})
	}
}

func TestEncodeMetaRejects(t *testing.T) {
	t.Parallel()
	for name, mut := range map[string]func(*Meta){
		"empty node ID":      func(m *Meta) { m.NodeID = "" },
		"node ID with slash": func(m *Meta) { m.NodeID = "a/b" },
		"long node ID":       func(m *Meta) { m.NodeID = strings.Repeat("a", maxNodeIDLen+1) },
		"empty site":         func(m *Meta) { m.Site = "" },
		"control char":       func(m *Meta) { m.Site = "a\nb" },
		"bad utf8":           func(m *Meta) { m.Version = "\xff" },
		"bad multiaddr":      func(m *Meta) { m.P2PAddr = "127.0.0.1:4001" },
		"distrust too many":  func(m *Meta) { m.Distrust = []string{"a", "b", "c"} },
		"distrust empty ID":  func(m *Meta) { m.Distrust = []string{""} },
		"distrust bad ID":    func(m *Meta) { m.Distrust = []string{"a/b"} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := sampleMeta()
			mut(&m)
			if _, err := EncodeMeta(m); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("err = %v, want ErrBadMeta", err)
			}
		})
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	t.Parallel()
	good, err := EncodeMeta(sampleMeta())
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	for name, b := range map[string][]byte{
		"empty":           nil,
		"format 0":        edit(func(b []byte) []byte { b[0] = 0; return b }),
		"unknown flag":    edit(func(b []byte) []byte { b[1] |= 0x80; return b }),
		"truncated":       good[:len(good)-1],
		"trailing byte":   append(bytes.Clone(good), 0),
		"huge length":     append([]byte{1, 0}, binary.AppendUvarint(nil, 1<<40)...),
		"non-minimal len": {1, 0, 0x81, 0x00, 'a'},
		"too big":         make([]byte, MetaMaxSize+1),
		"garbage":         []byte("hello, world, this is not meta"),
		"distrust count":  edit(func(b []byte) []byte { b[0] = 2; return append(b, MaxDistrust+1, 1, 'a', 1, 'b', 1, 'c') }),
		"distrust bad ID": edit(func(b []byte) []byte { b[0] = 2; return append(b, 1, 3, 'a', '/', 'b') }),
		"distrust cut":    edit(func(b []byte) []byte { b[0] = 2; return append(b, 2, 1, 'a') }),
		"format 2 tail":   edit(func(b []byte) []byte { b[0] = 2; return append(b, 1, 1, 'a', 0) }),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := DecodeMeta(b); !errors.Is(err, ErrBadMeta) {
				t.Fatalf("err = %v, want ErrBadMeta", err)
			}
		})
	}
}

func TestDecodeMetaNewerFormat(t *testing.T) {
	t.Parallel()
	b, err := EncodeMeta(sampleMeta())
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 4
	b = append(b, 1, 1, 'a')                       // format 2's distrust list
	b = append(b, 1, 1, 2, 3, 4, 5, 6, 0x80, 0x01) // format 3's measured list
	b = append(b, "future fields"...)
	got, err := DecodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleMeta()
	want.Distrust = []string{"a"}
	want.Measured = []Measurement{{Peer: [MeasureTagSize]byte{1, 2, 3, 4, 5, 6}, Bps: 128}}
	if !got.Equal(want) {
		t.Fatalf("got %+v", got)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{sampleMeta(), {NodeID: "a", Site: "b"}} {
		b, err := EncodeMeta(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0, 0x81, 0x00})
	f.Add([]byte{2, 3, 1, 'a', 1, 'b', 0, 0, 0, 0, 0, 0, 0, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMeta(b)
		if err != nil {
			return
		}
		enc, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("decoded meta does not encode: %v", err)
		}
		again, err := DecodeMeta(enc)
		if err != nil || !again.Equal(m) {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, m)
		}
		if b[0] == metaFormat && !bytes.Equal(enc, b) {
			t.Fatalf("format-1 encoding not canonical: %x vs %x", b, enc)
		}
	})
}

func TestMetaMeasuredRoundTrip(t *testing.T) {
	t.Parallel()
	m := sampleMeta()
	for i := range MaxMeasured {
		m.Measured = append(m.Measured, Measurement{Peer: MeasureTag(peerID(i)), Bps: uint64(i) << 20})
	}
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != metaFormatMeasured {
		t.Fatalf("format %d, want %d", b[0], metaFormatMeasured)
	}
	got, err := DecodeMeta(b)
	if err != nil || !got.Equal(m) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	m.Measured = append(m.Measured, Measurement{})
	if _, err := EncodeMeta(m); !errors.Is(err, ErrBadMeta) {
		t.Fatalf("%d measurements: %v, want ErrBadMeta", len(m.Measured), err)
	}
}
