package cache

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/relaymesh/relaymesh/core"
)

// Memory is an in-memory Store and KV for tests and the simulator. It is
// safe for concurrent use. It keeps private copies of what it is given and
// verifies bytes on Put only: nothing can change them afterwards.
type Memory struct {
	mu     sync.RWMutex // guards data and closed; held for writing by mutations
	idx    *index
	data   map[cid.Cid][]byte
	closed bool

	kv memoryKV
}

// NewMemory returns an empty in-memory cache with the given fragment quota
// in bytes (0 = unlimited).
func NewMemory(quota int64) *Memory {
	return &Memory{
		idx:  newIndex(quota),
		data: make(map[cid.Cid][]byte),
		kv:   memoryKV{m: make(map[string][]byte)},
	}
}

func (m *Memory) Put(c cid.Cid, data []byte) error {
	if err := core.VerifyBytes(c, data); err != nil {
		return fmt.Errorf("cache: put: %w", err)
	}
	return m.put(c, data)
}

// PutVerified stores bytes hashed already (VerifiedPutter).
func (m *Memory) PutVerified(v core.Verified) error { return m.put(v.CID(), v.Bytes()) }

func (m *Memory) put(c cid.Cid, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.idx.touch(c) {
		return nil
	}
	victims, err := m.idx.plan(int64(len(data)))
	if err != nil {
		return fmt.Errorf("cache: put %s: %w", c, err)
	}
	for _, v := range victims {
		delete(m.data, v)
	}
	m.idx.remove(victims...)
	m.data[c] = bytes.Clone(data)
	m.idx.add(c, int64(len(data)))
	return nil
}

// read returns the stored slice itself; callers must not modify it.
func (m *Memory) read(op string, c cid.Cid) ([]byte, error) {
	if err := core.CheckCID(c); err != nil {
		return nil, fmt.Errorf("cache: %s: %w", op, err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, ErrClosed
	}
	d, ok := m.data[c]
	if !ok {
		return nil, fmt.Errorf("cache: %s %s: %w", op, c, ErrNotFound)
	}
	m.idx.touch(c)
	return d, nil
}

func (m *Memory) Get(c cid.Cid) ([]byte, error) {
	d, err := m.read("get", c)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(d), nil
}

func (m *Memory) Open(c cid.Cid) (io.ReadCloser, int64, error) {
	d, err := m.read("open", c)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(d)), int64(len(d)), nil
}

func (m *Memory) Has(c cid.Cid) (bool, error) {
	if err := core.CheckCID(c); err != nil {
		return false, fmt.Errorf("cache: has: %w", err)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return false, ErrClosed
	}
	_, ok := m.data[c]
	return ok, nil
}

func (m *Memory) Delete(c cid.Cid) error {
	if err := core.CheckCID(c); err != nil {
		return fmt.Errorf("cache: delete: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	delete(m.data, c)
	m.idx.remove(c)
	return nil
}

func (m *Memory) Pin(owner string, cids ...cid.Cid) error {
	if err := checkPin(owner, cids); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.idx.pin(owner, cids...)
	return nil
}

func (m *Memory) Unpin(owner string) error {
	if owner == "" {
		return fmt.Errorf("cache: unpin: %w", ErrBadOwner)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	m.idx.unpin(owner)
	return nil
}

func (m *Memory) Usage() (used, quota int64) { return m.idx.usage() }

func (m *Memory) List(fn func(c cid.Cid, size int64) error) error {
	m.mu.RLock()
	closed := m.closed
	m.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	for _, e := range m.idx.snapshot() {
		if err := fn(e.c, e.size); err != nil {
			return err
		}
	}
	return nil
}

// Close makes every later call fail with ErrClosed and drops the data.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.data = nil
	m.kv.close()
	return nil
}

func checkPin(owner string, cids []cid.Cid) error {
	if owner == "" {
		return fmt.Errorf("cache: pin: %w", ErrBadOwner)
	}
	for _, c := range cids {
		if err := core.CheckCID(c); err != nil {
			return fmt.Errorf("cache: pin %q: %w", owner, err)
		}
	}
	return nil
}
