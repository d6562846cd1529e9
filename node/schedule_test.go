package node

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// fakeClock is an injectable clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestNotBeforeHoldsDownloadWithoutPrefetch(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	clock := &fakeClock{t: time.Now()}
	n := startNode(t, enrollNode(t, f), func(c *Config) { c.Now = clock.Now })
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 10)
	o := f.order("scheduled", n.ID().String(), pkg, func(o *core.Order) {
		o.NotBefore = o.IssuedAt.Add(time.Hour)
		o.Expires = o.IssuedAt.Add(3 * time.Hour)
	})
	if _, err := f.push(testCtx(t), n, f.sign(o)); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "scheduled", core.StateNotified)
	// Several wait steps pass; nothing is fetched before not-before.
	for range 10 {
		if err := n.syncOnce(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.servedCount()[pkg.id]; got != 0 {
		t.Fatalf("manifest fetched %d times before not-before", got)
	}
	clock.Advance(61 * time.Minute)
	f.waitState(t, "scheduled", core.StateSuccess)
}

func TestPrefetchDownloadsButInstallsInWindow(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	clock := &fakeClock{t: time.Now()}
	n := startNode(t, enrollNode(t, f), func(c *Config) { c.Now = clock.Now })
	marker := filepath.Join(t.TempDir(), "ran")
	pkg := f.addPackage(markerScript(marker, 0), 10)
	h := clock.Now().Local().Hour()
	window := fmt.Sprintf("%02d:00-%02d:00", (h+2)%24, (h+3)%24) // opens in 1-2 hours
	o := f.order("windowed", n.ID().String(), pkg, func(o *core.Order) {
		o.Window, o.Prefetch = window, true
		o.Expires = o.IssuedAt.Add(6 * time.Hour)
	})
	if _, err := f.push(testCtx(t), n, f.sign(o)); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "windowed", core.StateDownloaded)
	if err := n.syncOnce(testCtx(t)); err != nil { // a moment for a wrong install to show
		t.Fatal(err)
	}
	for _, s := range f.statuses("windowed") {
		if s.State == core.StateInstalling {
			t.Fatalf("installed outside the window %s", window)
		}
	}
	w, err := core.ParseWindow(window)
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now()
	clock.Advance(w.NextOpen(now.Local()).Sub(now) + time.Minute)
	f.waitState(t, "windowed", core.StateSuccess)
	if _, err := os.Stat(marker); err != nil {
		t.Error(err)
	}
}

func TestExpiredBeforeWindowFails(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	pkg := f.addPackage("exit 0", 10)
	h := time.Now().Local().Hour()
	o := f.order("too-late", n.ID().String(), pkg, func(o *core.Order) {
		o.Window, o.Prefetch = fmt.Sprintf("%02d:00-%02d:00", (h+3)%24, (h+4)%24), true
		o.Expires = o.IssuedAt.Add(time.Hour)
	})
	if _, err := f.push(testCtx(t), n, f.sign(o)); err != nil {
		t.Fatal(err)
	}
	f.waitState(t, "too-late", core.ErrExpiredSt)
}

func TestPackageForAnotherPlatformIsBadID(t *testing.T) {
	t.Parallel()
	f := newFakeCoord(t)
	n := startNode(t, enrollNode(t, f), nil)
	other := "windows"
	if runtime.GOOS == "windows" {
		other = "linux"
	}
	pkg := f.addPackageWith("exit 0", 100<<10, func(m *core.Manifest) { m.OS = other })
	if _, err := f.push(testCtx(t), n, f.sign(f.order("wrong-os", n.ID().String(), pkg, nil))); err != nil {
		t.Fatal(err)
	}
	got := f.waitState(t, "wrong-os", core.ErrBadID)
	if got.Package != pkg.id {
		t.Errorf("package %q, want %s", got.Package, pkg.id)
	}
	if served := f.servedCount(); served[pkg.frags[0]] != 0 {
		t.Errorf("fragments of a package for %s were fetched", other)
	}
}
