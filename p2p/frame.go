package p2p

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteMsg writes v as one frame: the uvarint length of its JSON encoding,
// then the JSON, in a single Write.
func WriteMsg(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("p2p: encode message: %w", err)
	}
	buf := make([]byte, 0, binary.MaxVarintLen64+len(body))
	buf = binary.AppendUvarint(buf, uint64(len(body)))
	buf = append(buf, body...)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("p2p: write message: %w", err)
	}
	return nil
}

// ReadMsg reads one frame written by WriteMsg into v. It reads exactly the
// frame and nothing after it, so raw bytes may follow on the same stream.
// A frame longer than maxBytes is refused before its body is read, and
// the body's buffer grows with the bytes that arrive, never to the
// announced length up front. The
// JSON must hold one value whose fields all exist in v. It returns io.EOF,
// unwrapped, when r ends before the first byte of a frame.
func ReadMsg(r io.Reader, maxBytes int, v any) error {
	if maxBytes <= 0 {
		return fmt.Errorf("%w: ReadMsg maxBytes %d: must be positive", ErrBadConfig, maxBytes)
	}
	br, ok := r.(io.ByteReader)
	if !ok {
		br = byteReader{r}
	}
	n, err := binary.ReadUvarint(br)
	switch {
	case errors.Is(err, io.EOF):
		return io.EOF // ReadUvarint returns io.EOF only before the first byte
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: length prefix cut short: %w", ErrBadMsg, err)
	case err != nil:
		return fmt.Errorf("%w: length prefix: %w", ErrBadMsg, err)
	}
	if n > uint64(maxBytes) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMsgTooLarge, n, maxBytes)
	}
	if n == 0 {
		return fmt.Errorf("%w: empty frame", ErrBadMsg)
	}
	body, err := readGrowing(r, int(n))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: frame of %d bytes cut short after %d: %w", ErrBadMsg, n, len(body), io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("p2p: read message: %w", err)
	}
	return decodeStrict(body, v)
}

// readChunk is the most ReadMsg allocates ahead of the bytes that arrived:
// a peer announcing a large frame and sending nothing costs this, not the
// announced length.
const readChunk = 16 << 10

// readGrowing reads exactly n bytes from r into a buffer that grows with
// the bytes that actually arrive: at most readChunk, or double what has
// arrived, is allocated ahead. It returns what it read with the error.
func readGrowing(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grow := min(n-len(buf), max(len(buf), readChunk))
			buf = append(buf, make([]byte, grow)...)[:len(buf)]
		}
		k, err := r.Read(buf[len(buf):min(cap(buf), n)])
		buf = buf[:len(buf)+k]
		if err != nil {
			if len(buf) == n {
				break
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
	return buf, nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadMsg, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: data after the JSON value", ErrBadMsg)
	}
	return nil
}

// byteReader reads one byte at a time, never past the length prefix.
type byteReader struct{ r io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var p [1]byte
	for {
		n, err := b.r.Read(p[:])
		if n == 1 {
			return p[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}
