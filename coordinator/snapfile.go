package coordinator

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
)

// The snapshot file: a magic, a format version, then frames, the last of
// which holds a checksum of every byte before it.
//
//	magic      8 bytes  "\x89RMSNAP\n" (the high byte and the newline catch
//	                    text-mode copies, as PNG's signature does)
//	format     2 bytes  big endian, SnapshotFormat
//	frames     kind (1 byte), uvarint name length, name, uvarint data
//	           length, data:
//	             'H' header: SnapshotInfo as JSON (first frame, once)
//	             'F' file of the coordinator's directory: name, bytes
//	             'K' state entry: badger key, value
//	             'E' end: files (8 bytes), entries (8 bytes), SHA-256 of
//	                 every byte of the file before this frame (32 bytes)
//
// Nothing may follow the end frame. A reader refuses a file that does not
// start with the magic, has another format, lacks the end frame or whose
// checksum or counts differ: a truncated or damaged copy restores nothing.
const (
	SnapshotFormat = 1
	snapMagic      = "\x89RMSNAP\n"

	frameHeader = 'H'
	frameFile   = 'F'
	frameEntry  = 'K'
	frameEnd    = 'E'

	maxSnapName = 64 << 10  // badger keys are at most 65,000 bytes
	maxSnapData = 256 << 20 // a fragment is at most 64 MiB; big KV values stay far below
	maxSnapMeta = 1 << 20   // header and key files
)

// SnapshotInfo is a snapshot's header.
type SnapshotInfo struct {
	Format   int       `json:"format"`
	Created  time.Time `json:"created"`
	PeerID   string    `json:"peer_id"`
	OrderKey string    `json:"order_key"` // key ID of the order-signing key
	Version  string    `json:"version"`   // relaymesh version that took it
	// Keys says the coordinator's key files and config are in it (a file
	// saved by the CLI); the admin API's stream has none.
	Keys bool `json:"keys"`
	// Counts are filled by the reader and by the writer's end.
	Files   int   `json:"files,omitempty"`
	Entries int64 `json:"entries,omitempty"`
}

// snapWriter writes the format. Call header first and end last.
type snapWriter struct {
	w       *bufio.Writer
	h       hash.Hash
	files   uint64
	entries uint64
	err     error
}

func newSnapWriter(w io.Writer) *snapWriter {
	sw := &snapWriter{h: sha256.New()}
	sw.w = bufio.NewWriterSize(io.MultiWriter(w, sw.h), 256<<10)
	_, sw.err = sw.w.WriteString(snapMagic)
	if sw.err == nil {
		sw.err = binary.Write(sw.w, binary.BigEndian, uint16(SnapshotFormat))
	}
	return sw
}

func (sw *snapWriter) frame(kind byte, name, data []byte) error {
	if sw.err != nil {
		return sw.err
	}
	var hdr [1 + 2*binary.MaxVarintLen64]byte
	hdr[0] = kind
	n := 1 + binary.PutUvarint(hdr[1:], uint64(len(name)))
	if _, sw.err = sw.w.Write(hdr[:n]); sw.err == nil {
		_, sw.err = sw.w.Write(name)
	}
	if sw.err == nil {
		n = binary.PutUvarint(hdr[:], uint64(len(data)))
		_, sw.err = sw.w.Write(hdr[:n])
	}
	if sw.err == nil {
		_, sw.err = sw.w.Write(data)
	}
	return sw.err
}

func (sw *snapWriter) header(info SnapshotInfo) error {
	info.Format = SnapshotFormat
	info.Files, info.Entries = 0, 0
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return sw.frame(frameHeader, nil, b)
}

func (sw *snapWriter) file(name string, data []byte) error {
	sw.files++
	return sw.frame(frameFile, []byte(name), data)
}

func (sw *snapWriter) entry(key, val []byte) error {
	sw.entries++
	return sw.frame(frameEntry, key, val)
}

// end writes the end frame and flushes.
func (sw *snapWriter) end() error {
	if sw.err != nil {
		return sw.err
	}
	if sw.err = sw.w.Flush(); sw.err != nil {
		return sw.err
	}
	sum := sw.h.Sum(nil)
	data := binary.BigEndian.AppendUint64(nil, sw.files)
	data = binary.BigEndian.AppendUint64(data, sw.entries)
	data = append(data, sum...)
	if err := sw.frame(frameEnd, nil, data); err != nil {
		return err
	}
	sw.err = sw.w.Flush()
	return sw.err
}

// snapReader reads the format. next returns frames after the header until
// the end frame has been checked, then io.EOF.
type snapReader struct {
	r       *bufio.Reader
	h       hash.Hash
	off     int64 // bytes read
	info    SnapshotInfo
	files   uint64
	entries uint64
	done    bool
}

// countReader hashes and counts what the frames read.
type countReader struct{ sr *snapReader }

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.sr.r.Read(p)
	c.sr.h.Write(p[:n])
	c.sr.off += int64(n)
	return n, err
}

func (c countReader) ReadByte() (byte, error) {
	b, err := c.sr.r.ReadByte()
	if err == nil {
		c.sr.h.Write([]byte{b})
		c.sr.off++
	}
	return b, err
}

func bad(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSnapshot, fmt.Sprintf(format, a...))
}

// newSnapReader checks the magic, the format and the header frame.
func newSnapReader(r io.Reader) (*snapReader, error) {
	sr := &snapReader{r: bufio.NewReaderSize(r, 256<<10), h: sha256.New()}
	cr := countReader{sr}
	head := make([]byte, len(snapMagic)+2)
	n, err := io.ReadFull(cr, head)
	if err != nil && n == 0 {
		return nil, bad("empty file: not a relaymesh coordinator snapshot")
	}
	if n < len(snapMagic) || string(head[:len(snapMagic)]) != snapMagic {
		return nil, bad("not a relaymesh coordinator snapshot (it starts with %q)", head[:min(n, len(snapMagic))])
	}
	if err != nil {
		return nil, bad("truncated after %d bytes", n)
	}
	if f := binary.BigEndian.Uint16(head[len(snapMagic):]); f != SnapshotFormat {
		return nil, bad("format %d: this relaymesh reads format %d; restore it with the relaymesh release that saved it", f, SnapshotFormat)
	}
	kind, _, data, err := sr.frame()
	if err != nil {
		return nil, err
	}
	if kind != frameHeader {
		return nil, bad("first frame is %q, want the header", kind)
	}
	if err := json.Unmarshal(data, &sr.info); err != nil || sr.info.Format != SnapshotFormat {
		return nil, bad("header: %v", orErr(err, "format field differs from the file's"))
	}
	return sr, nil
}

func orErr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}

// frame reads one frame's kind, name and data.
func (sr *snapReader) frame() (kind byte, name, data []byte, err error) {
	cr := countReader{sr}
	start := sr.off
	kind, err = cr.ReadByte()
	if errors.Is(err, io.EOF) {
		return 0, nil, nil, bad("truncated: the file ends after %d bytes without its end frame (copy it again)", sr.off)
	}
	if err != nil {
		return 0, nil, nil, err
	}
	name, err = sr.field(cr, maxSnapName)
	if err == nil {
		limit := int64(maxSnapData)
		if kind != frameEntry {
			limit = maxSnapMeta
		}
		data, err = sr.field(cr, limit)
	}
	if err != nil {
		return 0, nil, nil, fmt.Errorf("frame at byte %d: %w", start, err)
	}
	return kind, name, data, nil
}

func (sr *snapReader) field(cr countReader, limit int64) ([]byte, error) {
	n, err := binary.ReadUvarint(cr)
	if err != nil {
		return nil, bad("truncated: the file ends after %d bytes without its end frame (copy it again)", sr.off)
	}
	if n > uint64(limit) {
		return nil, bad("field of %d bytes, more than %d: damaged or not a snapshot", n, limit)
	}
	// Grows with the bytes that arrive, so a lying length costs nothing.
	b, err := io.ReadAll(io.LimitReader(cr, int64(n)))
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) != n {
		return nil, bad("truncated: the file ends after %d bytes without its end frame (copy it again)", sr.off)
	}
	return b, nil
}

// next returns the next file or entry frame; after the end frame checked
// out it returns io.EOF.
func (sr *snapReader) next() (kind byte, name, data []byte, err error) {
	if sr.done {
		return 0, nil, nil, io.EOF
	}
	sum := sr.h.Sum(nil) // of every byte before this frame
	kind, name, data, err = sr.frame()
	if err != nil {
		return 0, nil, nil, err
	}
	switch kind {
	case frameFile:
		sr.files++
		return kind, name, data, nil
	case frameEntry:
		sr.entries++
		return kind, name, data, nil
	case frameEnd:
	default:
		return 0, nil, nil, bad("unknown frame kind %q at byte %d", kind, sr.off)
	}
	if len(data) != 16+sha256.Size {
		return 0, nil, nil, bad("end frame of %d bytes, want %d", len(data), 16+sha256.Size)
	}
	files, entries := binary.BigEndian.Uint64(data), binary.BigEndian.Uint64(data[8:])
	if !bytes.Equal(data[16:], sum) {
		return 0, nil, nil, bad("checksum mismatch: the file is damaged")
	}
	if files != sr.files || entries != sr.entries {
		return 0, nil, nil, bad("end frame counts %d files and %d entries, the file holds %d and %d", files, entries, sr.files, sr.entries)
	}
	if _, err := sr.r.ReadByte(); !errors.Is(err, io.EOF) {
		return 0, nil, nil, bad("data after the end frame: damaged or two files joined")
	}
	sr.done = true
	sr.info.Files, sr.info.Entries = int(files), int64(entries)
	return 0, nil, nil, io.EOF
}
