//go:build linux

// Package powerloss gives tests a directory on a disk that can lose power:
// an ext4 filesystem on a loop device whose backing image holds exactly
// what the kernel has written to the "disk". Cut copies that image while
// the filesystem is still mounted and writes may still sit in the page
// cache (nothing is synced first), and mounts the copy: what a program
// finds there is what it would find after a power loss at that moment.
// Data written but never fsynced (or msynced) is, for the length of a test,
// still dirty in the page cache, so it is missing from the copy: the kernel
// writes dirty pages back only after vm.dirty_expire_centisecs (30 s by
// default) or under memory pressure, and the journal commit interval is set
// to 600 s. Such writeback can only keep data a program did not sync, never
// lose data it did, so a test built on Cut cannot fail because of it; it
// could at worst miss a missing sync.
//
// It needs root (losetup, mount) and mkfs.ext4; without them a test is
// skipped with the reason.
package powerloss

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Disk is a mounted ext4 filesystem on a loop device.
type Disk struct {
	t     testing.TB
	image string
	dir   string
}

// imageBytes is the size of the filesystem: room for badger's files.
const imageBytes = 256 << 20

// New makes and mounts a fresh Disk; its cleanup unmounts and detaches it.
func New(t testing.TB) *Disk {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("powerloss: needs root for losetup and mount")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("powerloss: %s not found: %v", tool, err)
		}
	}
	work := t.TempDir()
	d := &Disk{t: t, image: filepath.Join(work, "disk.img"), dir: filepath.Join(work, "mnt")}
	f, err := os.Create(d.image)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(imageBytes); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.ext4", "-q", "-F", d.image)
	mountImage(t, d.image, d.dir)
	return d
}

// Dir is the mounted filesystem's root.
func (d *Disk) Dir() string { return d.dir }

// Cut takes the disk as a power loss now would leave it and mounts that
// copy read-write (ext4 replays its journal, as after a reboot). It
// returns the copy's root; the copy is unmounted in cleanup. The original
// stays mounted and usable.
func (d *Disk) Cut() string {
	t := d.t
	t.Helper()
	work := t.TempDir()
	img := filepath.Join(work, "after.img")
	src, err := os.Open(d.image) // the loop device writes through this file's page cache
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(work, "mnt")
	mountImage(t, img, dir)
	return dir
}

// mountImage attaches img to a loop device and mounts it at dir, with
// cleanups in reverse order.
func mountImage(t testing.TB, img, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(run(t, "losetup", "--find", "--show", img))
	t.Cleanup(func() { _, _ = exec.Command("losetup", "--detach", dev).CombinedOutput() })
	run(t, "mount", "-t", "ext4", "-o", "commit=600", dev, dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("powerloss: umount %s: %v: %s", dir, err, out)
		}
	})
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("powerloss: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
