package cache

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// memoryKV is the KV of a Memory cache.
type memoryKV struct {
	mu     sync.RWMutex
	m      map[string][]byte
	closed bool
}

// KV returns the cache's key-value area.
func (m *Memory) KV() KV { return &m.kv }

func (k *memoryKV) close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	k.m = nil
}

func (k *memoryKV) Get(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("cache: kv get: %w", ErrBadKey)
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return nil, ErrClosed
	}
	v, ok := k.m[key]
	if !ok {
		return nil, fmt.Errorf("cache: kv get %q: %w", key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (k *memoryKV) Set(key string, val []byte) error {
	return k.Update(func(tx KVTx) error { return tx.Set(key, val) })
}

func (k *memoryKV) Delete(key string) error {
	return k.Update(func(tx KVTx) error { return tx.Delete(key) })
}

func (k *memoryKV) Scan(prefix string, fn func(key string, val []byte) error) error {
	type pair struct {
		k string
		v []byte
	}
	k.mu.RLock()
	if k.closed {
		k.mu.RUnlock()
		return ErrClosed
	}
	var pairs []pair
	for key, v := range k.m {
		if strings.HasPrefix(key, prefix) {
			pairs = append(pairs, pair{key, bytes.Clone(v)})
		}
	}
	k.mu.RUnlock()
	slices.SortFunc(pairs, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	for _, p := range pairs {
		if err := fn(p.k, p.v); err != nil {
			return err
		}
	}
	return nil
}

func (k *memoryKV) Update(fn func(tx KVTx) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return ErrClosed
	}
	tx := &memoryTx{base: k.m, writes: make(map[string][]byte)}
	if err := fn(tx); err != nil {
		return err
	}
	for key, v := range tx.writes {
		if v == nil {
			delete(k.m, key)
		} else {
			k.m[key] = v
		}
	}
	return nil
}

// memoryTx buffers writes; a nil value in writes is a delete.
type memoryTx struct {
	base   map[string][]byte
	writes map[string][]byte
}

func (t *memoryTx) Get(key string) ([]byte, error) {
	if key == "" {
		return nil, fmt.Errorf("cache: kv get: %w", ErrBadKey)
	}
	v, ok := t.writes[key]
	if !ok {
		v, ok = t.base[key]
	}
	if !ok || v == nil {
		return nil, fmt.Errorf("cache: kv get %q: %w", key, ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (t *memoryTx) Set(key string, val []byte) error {
	if key == "" {
		return fmt.Errorf("cache: kv set: %w", ErrBadKey)
	}
	v := make([]byte, len(val)) // never nil, so an empty value is not a delete
	copy(v, val)
	t.writes[key] = v
	return nil
}

func (t *memoryTx) Delete(key string) error {
	if key == "" {
		return fmt.Errorf("cache: kv delete: %w", ErrBadKey)
	}
	t.writes[key] = nil
	return nil
}
