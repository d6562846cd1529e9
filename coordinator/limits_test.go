package coordinator

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/relaymesh/relaymesh/core"
)

// TestPublishRefusesHugePackage: a 1 TiB manifest made of one 64 MiB
// fragment repeated 16,384 times, every fragment uploaded, is refused by
// the default maximum (8 GiB) with the numbers and the setting to change.
func TestPublishRefusesHugePackage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	frag := make([]byte, 64<<20)
	rand.Read(frag)
	id := core.FragmentCID(frag)
	if err := h.c.PutFragment(id, frag); err != nil {
		t.Fatal(err)
	}
	const size = int64(1) << 40
	m := core.Manifest{Schema: core.ManifestSchema, Name: "huge", Version: "1", OS: "linux", Arch: "amd64",
		Action: core.ActionLaunch, Command: []string{"./install.sh"}, Priority: 5, TimeoutSec: 600, Size: size, FragmentSize: 64 << 20}
	for range size / (64 << 20) {
		m.Fragments = append(m.Fragments, id.String())
	}
	m.Digest = "sha256:" + strings.Repeat("0", 64)
	b, err := m.Encode()
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	_, err = h.c.PublishPackage(b)
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "1099511627776 bytes, above the coordinator's maximum of 8589934592 (max_package_bytes") {
		t.Fatalf("publish of a 1 TiB package: %v, want ErrBadRequest naming the maximum", err)
	}
	if len(h.c.Packages()) != 0 {
		t.Fatalf("packages after the refusal: %d, want 0", len(h.c.Packages()))
	}
}

// TestBuildRefusesPackageAboveMax: build stops reading one byte past the
// configured maximum and refuses; one at the maximum is built.
func TestBuildRefusesPackageAboveMax(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.c.cfg.MaxPackageBytes = 200 << 10
	big := make([]byte, 300<<10)
	rand.Read(big)
	_, err := h.c.BuildPackage(pkgManifest("big"), bytes.NewReader(big), 64<<10)
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "over 204800 bytes, the coordinator's maximum") {
		t.Fatalf("build of 300 KiB with a 200 KiB maximum: %v", err)
	}
	if _, err := h.c.BuildPackage(pkgManifest("ok"), bytes.NewReader(big[:200<<10]), 64<<10); err != nil {
		t.Fatalf("build at the maximum: %v", err)
	}
}

// TestOrderLifetimeDefaultAndMax: an order expires 24 h after not-before
// unless asked; more than max_order_lifetime is refused.
func TestOrderLifetimeDefaultAndMax(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	d := f.deploy(DeployRequest{All: true})
	if got := d.Expires.Sub(d.NotBefore); got != 24*time.Hour {
		t.Fatalf("default lifetime %s, want 24h", got)
	}
	_, err := f.cl.CreateDeployment(f.ctx, DeployRequest{All: true, Packages: []string{f.pkg}, Expires: "87600h"})
	if !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "above the coordinator's maximum order lifetime of 168h0m0s") {
		t.Fatalf("a 10-year order: %v, want ErrBadRequest naming the maximum", err)
	}
	if _, err := f.cl.CreateDeployment(f.ctx, DeployRequest{All: true, Packages: []string{f.pkg}, Expires: "168h"}); err != nil {
		t.Fatalf("an order at the maximum: %v", err)
	}
}

func pkgManifest(name string) core.Manifest {
	return core.Manifest{Name: name, Version: "1", OS: "linux", Arch: "amd64",
		Action: core.ActionLaunch, Command: []string{"./install.sh"}, Priority: 5, TimeoutSec: 600}
}

// TestEnrollPinsMaxOrderLifetime: the enrollment response carries the
// coordinator's maximum order lifetime for the node to pin.
func TestEnrollPinsMaxOrderLifetime(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := newFakeNode(t, h, "n1").mustEnroll(h.token(TokenRequest{Site: "a"}))
	if r.MaxOrderLifetime != int64(DefaultMaxOrderLifetime/time.Second) {
		t.Fatalf("enrollment response max order lifetime %ds, want %d", r.MaxOrderLifetime, int64(DefaultMaxOrderLifetime/time.Second))
	}
}
