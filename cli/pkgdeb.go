package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"pault.ag/go/debian/deb"

	"github.com/relaymesh/relaymesh/core"
)

// Archive kinds package build accepts: what the node can extract (tar.gz,
// zip) and Debian packages, which the node installs with apt/dpkg.
const (
	kindTarGz   = "tar.gz"
	kindZip     = "zip"
	kindDeb     = "deb"
	kindUnknown = "unknown"
)

// sniffArchive reads the first bytes of path and names its kind; "" when
// the file cannot be read (openArchive says why, later).
func sniffArchive(path string) (kind string, head []byte) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return "", nil
	}
	head = make([]byte, 21)
	n, _ := io.ReadFull(f, head)
	if n == 0 {
		return "", nil // empty: openArchive says so
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return kindTarGz, head
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return kindZip, head
	case bytes.HasPrefix(head, []byte("!<arch>\ndebian-binary")):
		return kindDeb, head
	}
	return kindUnknown, head
}

// describeHead shows a file's first bytes for an error message.
func describeHead(head []byte) string {
	if len(head) > 8 {
		head = head[:8]
	}
	return fmt.Sprintf("%q", head)
}

// debArch maps a Debian architecture to a manifest's.
func debArch(a string) (string, error) {
	switch a {
	case "amd64", "arm64":
		return a, nil
	case "i386":
		return "386", nil
	case "armhf", "armel":
		return "arm", nil
	case "all":
		return "any", nil
	}
	return "", fmt.Errorf("architecture %q: relaymesh packages are for amd64, arm64, i386, armhf/armel or all", a)
}

// debControl reads a .deb's control file (name, version, architecture)
// and reads its data member to the end, so a truncated or damaged file is
// refused here rather than on every node.
func debControl(path string) (name, version, arch string, err error) {
	d, closeFn, err := deb.LoadFile(path)
	if err != nil {
		return "", "", "", fmt.Errorf("not a readable Debian package: %w", err)
	}
	defer closeFn()
	for {
		_, err := d.Data.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			_, err = io.Copy(io.Discard, d.Data)
		}
		if err != nil {
			return "", "", "", fmt.Errorf("its data member is damaged or truncated: %w", err)
		}
	}
	c := d.Control
	arch, err = debArch(c.Architecture.String())
	if err != nil {
		return "", "", "", err
	}
	return c.Package, c.Version.String(), arch, nil
}

// fillFromDeb sets m's name, version, platform and action from the .deb
// at path; flags the user gave must agree with its control file.
func fillFromDeb(m *core.Manifest, path string, given func(string) bool) error {
	const cmd = "package build"
	name, version, arch, err := debControl(path)
	if err != nil {
		return usageErrorf("%s: archive %q: %v", cmd, path, err)
	}
	for _, f := range []struct{ flag, got, want string }{
		{"name", m.Name, name}, {"version", m.Version, version}, {"arch", m.Arch, arch},
	} {
		if given(f.flag) && f.got != f.want {
			return usageErrorf("%s: --%s %q but the .deb's control file says %q: drop --%s (it is read from the package)", cmd, f.flag, f.got, f.want, f.flag)
		}
	}
	if given("action") && m.Action != core.ActionDeb {
		return usageErrorf("%s: --action %s with a Debian package %q: drop --action (a .deb installs with apt/dpkg and is removed by name)", cmd, m.Action, path)
	}
	for _, f := range []string{"command", "uninstall", "store-path", "no-archive"} {
		if given(f) {
			return usageErrorf("%s: --%s with a Debian package %q: the node installs it with apt/dpkg and removes it by name; drop --%s", cmd, f, path, f)
		}
	}
	if given("os") && m.OS != "linux" {
		return usageErrorf("%s: --os %s with a Debian package: it is for linux", cmd, m.OS)
	}
	m.Name, m.Version, m.Arch, m.OS, m.Action = name, version, arch, "linux", core.ActionDeb
	return nil
}

// unknownArchive is the refusal of an archive that is neither tar.gz, zip
// nor .deb.
func unknownArchive(path string, head []byte) error {
	what := "starts with " + describeHead(head)
	if strings.HasPrefix(string(head), "!<arch>") {
		what = "is an ar archive but not a Debian package (no debian-binary member first)"
	}
	return usageErrorf("package build: archive %q %s: not a tar.gz, zip or .deb; nodes could not unpack it: give one of those", path, what)
}
