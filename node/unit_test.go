package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestBackoffSchedule(t *testing.T) {
	t.Parallel()
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range want {
		if got := backoff(time.Second, 60*time.Second, i+1); got != w*time.Second {
			t.Errorf("attempt %d: %s, want %s", i+1, got, w*time.Second)
		}
	}
	if got := backoff(time.Second, time.Minute, 1000); got != time.Minute {
		t.Errorf("attempt 1000: %s", got)
	}
	if got := backoff(time.Second, time.Minute, 0); got != time.Second {
		t.Errorf("attempt 0: %s", got)
	}
}

func TestConfigValidateNamesField(t *testing.T) {
	t.Parallel()
	cases := map[string]func(c *Config){
		"Dir":                   func(c *Config) { c.Dir = "" },
		"listen":                func(c *Config) { c.Listen = nil },
		"listen[0]":             func(c *Config) { c.Listen = []string{"not-a-multiaddr"} },
		"sync_interval":         func(c *Config) { c.SyncInterval = 0 },
		"status_backoff_max":    func(c *Config) { c.StatusBackoffMax = c.StatusBackoffMin / 2 },
		"status_batch":          func(c *Config) { c.StatusBatch = 0 },
		"fetch_concurrency":     func(c *Config) { c.FetchConcurrency = -1 },
		"job_attempts":          func(c *Config) { c.JobAttempts = 0 },
		"cache_quota":           func(c *Config) { c.CacheQuota = -1 },
		"temp_dir":              func(c *Config) { c.TempDir = "relative" },
		"install_limits":        func(c *Config) { c.InstallLimits.MaxFiles = 0 },
		"source_floor_bps":      func(c *Config) { c.SourceFloorBps = -1 },
		"source_floor_grace":    func(c *Config) { c.SourceFloorGrace = 0 },
		"source_floor_fraction": func(c *Config) { c.SourceFloorFraction = 1 },
	}
	for field, mut := range cases {
		c := DefaultConfig("/var/lib/relaymesh")
		mut(&c)
		err := c.Validate()
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	for _, c := range []Config{DefaultConfig("/x"), TestConfig("/x")} {
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c, err := LoadConfig(dir)
	if err != nil || c.SyncInterval != time.Minute || c.Dir != dir {
		t.Fatalf("no file: %+v, %v", c, err)
	}
	yml := "listen: [/ip4/0.0.0.0/tcp/4711]\nsync_interval: 5s\nstatus_backoff_max: 2m\ninstall_limits: {maxbytes: 1024, maxfiles: 10}\n"
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen[0] != "/ip4/0.0.0.0/tcp/4711" || c.SyncInterval != 5*time.Second ||
		c.StatusBackoffMax != 2*time.Minute || c.StatusBackoffMin != time.Second || c.InstallLimits.MaxFiles != 10 {
		t.Errorf("loaded %+v", c)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("sync_intervall: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "sync_intervall") {
		t.Errorf("typo: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("status_batch: 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "status_batch") {
		t.Errorf("bad value: %v", err)
	}
}

func TestSlotsServeByRank(t *testing.T) {
	t.Parallel()
	s := newSlots(1)
	ctx := context.Background()
	first, err := s.acquire(ctx, rank{5, 1})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		got []rank
		wg  sync.WaitGroup
	)
	ranks := []rank{{7, 2}, {0, 9}, {5, 3}, {0, 4}}
	for _, r := range ranks {
		wg.Go(func() {
			rel, err := s.acquire(ctx, r)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			rel()
		})
	}
	eventually(t, 5*time.Second, "all waiters queued", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.waiters) == len(ranks)
	})
	// A waiter whose context ends leaves the queue.
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() { _, err := s.acquire(cctx, rank{0, 0}); done <- err }()
	eventually(t, 5*time.Second, "cancelled waiter queued", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.waiters) == len(ranks)+1
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	first()
	first() // releasing twice is harmless
	wg.Wait()
	want := []rank{{0, 4}, {0, 9}, {5, 3}, {7, 2}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("served %v, want %v", got, want)
		}
	}
	if s.free != 1 {
		t.Errorf("free = %d after all released", s.free)
	}
}

func FuzzPeekOrderID(f *testing.F) {
	f.Add([]byte(`{"schema":1,"kind":"deploy","id":"deploy-1"}`))
	f.Add([]byte(`{"id":"../../etc"}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		id := peekOrderID(payload)
		if id != "" && !orderIDRe.MatchString(id) {
			t.Fatalf("peekOrderID returned %q, not an order ID", id)
		}
	})
}

func FuzzLoadEnrollment(f *testing.F) {
	f.Add([]byte(`{"node_id":"x","coordinator":"/ip4/127.0.0.1/tcp/1","order_keys":["-----BEGIN PUBLIC KEY-----"]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, EnrollmentFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if e, err := LoadEnrollment(dir); err == nil {
			if _, err := e.orderKeys(); err != nil || len(e.OrderKeys) == 0 {
				t.Fatalf("accepted an enrollment without usable order keys: %+v", e)
			}
		}
	})
}
