package site

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"

	ma "github.com/multiformats/go-multiaddr"
)

// MetaMaxSize is the largest encoded Meta memberlist accepts (its own
// MetaMaxSize).
const MetaMaxSize = 512

// Field limits enforced by EncodeMeta and DecodeMeta.
const (
	maxNodeIDLen  = 96
	maxSiteLen    = 64
	maxP2PAddrLen = 200
	maxVersionLen = 32
)

// metaFormat is the first byte of an encoded Meta. A later format must start
// with the format-1 layout and append to it: DecodeMeta reads the format-1
// fields of any format >= 1 and ignores what follows, so a rolling upgrade
// does not make new nodes invisible to old ones. Format 1 itself must have no
// trailing bytes.
const metaFormat = 1

// metaFormatDistrust is format 1 followed by the Distrust list: a count
// byte, then each node ID (uvarint length + bytes). Metas with an empty
// list are still written in format 1.
const metaFormatDistrust = 2

// MaxDistrust bounds Meta.Distrust.
const MaxDistrust = 2

// metaFormatMeasured is format 2 (its distrust list may be empty)
// followed by the Measured list: a count byte, then each entry as its
// MeasureTagSize-byte peer tag and a uvarint rate. Metas with no
// measurements are written in format 1 or 2.
const metaFormatMeasured = 3

// MaxMeasured bounds Meta.Measured; MeasureTagSize is the size of a
// measured peer's tag (MeasureTag).
const (
	MaxMeasured    = 8
	MeasureTagSize = 6
)

// Measurement is what this node measured fetching fragments from a peer:
// the peer's MeasureTag and the rate, bytes/s.
type Measurement struct {
	Peer [MeasureTagSize]byte
	Bps  uint64
}

// MeasureTag names a node in Meta.Measured: the first MeasureTagSize
// bytes of sha256 of its node ID (a node ID would not leave room in
// the meta for more than a few).
func MeasureTag(nodeID string) [MeasureTagSize]byte {
	sum := sha256.Sum256([]byte(nodeID))
	return [MeasureTagSize]byte(sum[:MeasureTagSize])
}

const (
	flagRelayEligible = 1 << iota
	flagRelayClaim
	knownFlags = flagRelayEligible | flagRelayClaim
)

// Meta is what a node tells its site about itself, gossiped as memberlist
// node meta.
type Meta struct {
	NodeID         string // libp2p peer ID; equals the memberlist node name
	Site           string
	P2PAddr        string // multiaddr of the libp2p listener; may be empty
	UpBps          uint64 // declared upload, bytes/s
	DownBps        uint64 // declared download, bytes/s
	MeasuredBps    uint64 // measured throughput, bytes/s; 0 = unknown
	RelayEligible  bool
	FreeCacheBytes uint64
	StartedAt      int64 // unix seconds
	Version        string

	// RelayClaim is set by the Membership, not by the node: it says that
	// this node currently computes itself as a relay. Other members take
	// claimants as the incumbents of the election (hysteresis).
	RelayClaim bool

	// Distrust lists (at most MaxDistrust) members this node caught
	// serving bytes that do not match their CID; the election passes over
	// a member any live member distrusts.
	Distrust []string

	// Measured lists (at most MaxMeasured) what this node measured
	// fetching from site peers; the election ranks a member by what the
	// others measured of it, not by what it claims (see Score).
	Measured []Measurement
}

// Equal reports whether m and o hold the same values.
func (m Meta) Equal(o Meta) bool {
	return m.NodeID == o.NodeID && m.Site == o.Site && m.P2PAddr == o.P2PAddr && m.UpBps == o.UpBps &&
		m.DownBps == o.DownBps && m.MeasuredBps == o.MeasuredBps && m.RelayEligible == o.RelayEligible &&
		m.FreeCacheBytes == o.FreeCacheBytes && m.StartedAt == o.StartedAt && m.Version == o.Version &&
		m.RelayClaim == o.RelayClaim && slices.Equal(m.Distrust, o.Distrust) && slices.Equal(m.Measured, o.Measured)
}

// EncodeMeta returns the compact binary encoding of m:
// format byte, flags byte, then NodeID, Site, P2PAddr (uvarint length +
// bytes), UpBps, DownBps, MeasuredBps, FreeCacheBytes (uvarint), StartedAt
// (varint), Version (uvarint length + bytes).
func EncodeMeta(m Meta) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(m.NodeID)+len(m.Site)+len(m.P2PAddr)+len(m.Version))
	format := byte(metaFormat)
	switch {
	case len(m.Measured) > 0:
		format = metaFormatMeasured
	case len(m.Distrust) > 0:
		format = metaFormatDistrust
	}
	b = append(b, format)
	var flags byte
	if m.RelayEligible {
		flags |= flagRelayEligible
	}
	if m.RelayClaim {
		flags |= flagRelayClaim
	}
	b = append(b, flags)
	b = appendString(b, m.NodeID)
	b = appendString(b, m.Site)
	b = appendString(b, m.P2PAddr)
	b = binary.AppendUvarint(b, m.UpBps)
	b = binary.AppendUvarint(b, m.DownBps)
	b = binary.AppendUvarint(b, m.MeasuredBps)
	b = binary.AppendUvarint(b, m.FreeCacheBytes)
	b = binary.AppendVarint(b, m.StartedAt)
	b = appendString(b, m.Version)
	if format >= metaFormatDistrust {
		b = append(b, byte(len(m.Distrust)))
		for _, id := range m.Distrust {
			b = appendString(b, id)
		}
	}
	if format >= metaFormatMeasured {
		b = append(b, byte(len(m.Measured)))
		for _, e := range m.Measured {
			b = append(b, e.Peer[:]...)
			b = binary.AppendUvarint(b, e.Bps)
		}
	}
	if len(b) > MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(b), MetaMaxSize)
	}
	return b, nil
}

// DecodeMeta parses and validates an encoded Meta. It never panics; any
// malformed input gives an error wrapping ErrBadMeta.
func DecodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > MetaMaxSize {
		return m, fmt.Errorf("%w: %d bytes, limit %d", ErrBadMeta, len(b), MetaMaxSize)
	}
	d := decoder{b: b}
	format := d.byte("format")
	if d.err == nil && format < metaFormat {
		return m, fmt.Errorf("%w: format %d", ErrBadMeta, format)
	}
	flags := d.byte("flags")
	if d.err == nil && flags&^knownFlags != 0 {
		return m, fmt.Errorf("%w: unknown flags %#x", ErrBadMeta, flags)
	}
	m.RelayEligible = flags&flagRelayEligible != 0
	m.RelayClaim = flags&flagRelayClaim != 0
	m.NodeID = d.string("node ID", maxNodeIDLen)
	m.Site = d.string("site", maxSiteLen)
	m.P2PAddr = d.string("p2p address", maxP2PAddrLen)
	m.UpBps = d.uvarint("up bps")
	m.DownBps = d.uvarint("down bps")
	m.MeasuredBps = d.uvarint("measured bps")
	m.FreeCacheBytes = d.uvarint("free cache")
	m.StartedAt = d.varint("started at")
	m.Version = d.string("version", maxVersionLen)
	if d.err == nil && format >= metaFormatDistrust {
		n := d.byte("distrust count")
		if d.err == nil && n > MaxDistrust {
			return Meta{}, fmt.Errorf("%w: distrust count %d, limit %d", ErrBadMeta, n, MaxDistrust)
		}
		for range n {
			m.Distrust = append(m.Distrust, d.string("distrusted node ID", maxNodeIDLen))
		}
	}
	if d.err == nil && format >= metaFormatMeasured {
		n := d.byte("measured count")
		if d.err == nil && (n == 0 || n > MaxMeasured) {
			return Meta{}, fmt.Errorf("%w: measured count %d: want 1 to %d", ErrBadMeta, n, MaxMeasured)
		}
		for range n {
			var e Measurement
			e.Peer = d.tag("measured peer")
			e.Bps = d.uvarint("measured bps")
			m.Measured = append(m.Measured, e)
		}
	}
	if d.err != nil {
		return Meta{}, d.err
	}
	if format <= metaFormatMeasured && len(d.b) != 0 {
		return Meta{}, fmt.Errorf("%w: %d trailing bytes", ErrBadMeta, len(d.b))
	}
	if err := m.validate(); err != nil {
		return Meta{}, err
	}
	return m, nil
}

func (m Meta) validate() error {
	if m.NodeID == "" {
		return fmt.Errorf("%w: empty node ID", ErrBadMeta)
	}
	if err := checkText("node ID", m.NodeID, maxNodeIDLen); err != nil {
		return err
	}
	if err := checkNodeID("node ID", m.NodeID); err != nil {
		return err
	}
	if len(m.Distrust) > MaxDistrust {
		return fmt.Errorf("%w: distrust lists %d members, limit %d", ErrBadMeta, len(m.Distrust), MaxDistrust)
	}
	for _, id := range m.Distrust {
		if id == "" {
			return fmt.Errorf("%w: empty distrusted node ID", ErrBadMeta)
		}
		if err := checkNodeID("distrusted node ID", id); err != nil {
			return err
		}
	}
	if len(m.Measured) > MaxMeasured {
		return fmt.Errorf("%w: measured lists %d peers, limit %d", ErrBadMeta, len(m.Measured), MaxMeasured)
	}
	if m.Site == "" {
		return fmt.Errorf("%w: empty site", ErrBadMeta)
	}
	if err := checkText("site", m.Site, maxSiteLen); err != nil {
		return err
	}
	if err := checkText("version", m.Version, maxVersionLen); err != nil {
		return err
	}
	if err := checkText("p2p address", m.P2PAddr, maxP2PAddrLen); err != nil {
		return err
	}
	if m.P2PAddr != "" {
		if _, err := ma.NewMultiaddr(m.P2PAddr); err != nil {
			return fmt.Errorf("%w: p2p address %q: %w", ErrBadMeta, m.P2PAddr, err)
		}
	}
	return nil
}

func checkNodeID(field, id string) error {
	if len(id) > maxNodeIDLen {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrBadMeta, field, len(id), maxNodeIDLen)
	}
	for _, c := range []byte(id) {
		if !isAlnum(c) {
			return fmt.Errorf("%w: %s %q: only letters and digits allowed", ErrBadMeta, field, id)
		}
	}
	return nil
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrBadMeta, field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrBadMeta, field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %s %q holds a control character", ErrBadMeta, field, s)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields in order and keeps the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(field, why string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: %s", ErrBadMeta, field, why)
	}
}

func (d *decoder) byte(field string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(field, "truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(field, "bad varint")
		return 0
	}
	if n != len(binary.AppendUvarint(nil, v)) {
		d.fail(field, "non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(field string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(field, "bad varint")
		return 0
	}
	if n != len(binary.AppendVarint(nil, v)) {
		d.fail(field, "non-minimal varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) tag(field string) [MeasureTagSize]byte {
	var t [MeasureTagSize]byte
	if d.err != nil {
		return t
	}
	if len(d.b) < MeasureTagSize {
		d.fail(field, "truncated")
		return t
	}
	copy(t[:], d.b)
	d.b = d.b[MeasureTagSize:]
	return t
}

func (d *decoder) string(field string, max int) string {
	n := d.uvarint(field + " length")
	if d.err != nil {
		return ""
	}
	if n > uint64(max) {
		d.fail(field, fmt.Sprintf("length %d over limit %d", n, max))
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail(field, "truncated")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
