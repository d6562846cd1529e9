package install

import "sync"

// DefaultTailBytes is how much output Run keeps unless told otherwise.
const DefaultTailBytes = 64 << 10

// Tail is an io.Writer that keeps only the last bytes written to it: a ring
// buffer for a command's output. It is safe for concurrent use. The zero Tail
// keeps the last DefaultTailBytes.
type Tail struct {
	mu   sync.Mutex
	buf  []byte
	w    int  // next write position in buf
	full bool // buf has wrapped at least once
}

// NewTail returns a Tail keeping the last size bytes (DefaultTailBytes when
// size is not positive).
func NewTail(size int) *Tail {
	if size <= 0 {
		size = DefaultTailBytes
	}
	return &Tail{buf: make([]byte, size)}
}

// Write keeps the tail of p and never fails.
func (t *Tail) Write(p []byte) (int, error) {
	n := len(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.buf == nil {
		t.buf = make([]byte, DefaultTailBytes)
	}
	size := len(t.buf)
	if len(p) >= size {
		copy(t.buf, p[len(p)-size:])
		t.w, t.full = 0, true
		return n, nil
	}
	c := copy(t.buf[t.w:], p)
	copy(t.buf, p[c:])
	if t.w+len(p) >= size {
		t.full = true
	}
	t.w = (t.w + len(p)) % size
	return n, nil
}

// Bytes returns a copy of the kept bytes, oldest first.
func (t *Tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.full {
		return append([]byte(nil), t.buf[:t.w]...)
	}
	out := make([]byte, 0, len(t.buf))
	out = append(out, t.buf[t.w:]...)
	return append(out, t.buf[:t.w]...)
}
