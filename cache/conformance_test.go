package cache_test

import (
	"testing"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/cache/cachetest"
)

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	cachetest.RunStoreTests(t, func(t *testing.T, quota int64) cache.Store {
		m := cache.NewMemory(quota)
		t.Cleanup(func() { _ = m.Close() })
		return m
	})
}

func TestMemoryKV(t *testing.T) {
	t.Parallel()
	cachetest.RunKVTests(t, func(t *testing.T) cache.KV {
		m := cache.NewMemory(0)
		t.Cleanup(func() { _ = m.Close() })
		return m.KV()
	})
}

func TestBadgerStore(t *testing.T) {
	t.Parallel()
	cachetest.RunStoreTests(t, func(t *testing.T, quota int64) cache.Store {
		return cache.OpenTestBadger(t, cache.Config{QuotaBytes: quota})
	})
}

func TestBadgerKV(t *testing.T) {
	t.Parallel()
	cachetest.RunKVTests(t, func(t *testing.T) cache.KV {
		return cache.OpenTestBadger(t, cache.Config{}).KV()
	})
}

func TestBadgerInMemoryKV(t *testing.T) {
	t.Parallel()
	cachetest.RunKVTests(t, func(t *testing.T) cache.KV {
		return cache.OpenTestBadger(t, cache.TestConfig(0)).KV()
	})
}
