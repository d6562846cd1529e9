package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/ipfs/go-cid"
	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
)

// readManifestFile reads and decodes a manifest file; its package ID is the
// CID of the file's bytes, which are the manifest's canonical encoding.
func readManifestFile(cmd, path string) (*core.Manifest, cid.Cid, []byte, error) {
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, cid.Undef, nil, usageErrorf("%s: manifest file %q does not exist: check the path", cmd, path)
	case err != nil:
		return nil, cid.Undef, nil, usageErrorf("%s: manifest file %q cannot be read: %w", cmd, path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, core.MaxManifestBytes+1))
	if err != nil {
		return nil, cid.Undef, nil, usageErrorf("%s: manifest file %q cannot be read: %w", cmd, path, err)
	}
	m, err := core.DecodeManifest(data)
	if err != nil {
		return nil, cid.Undef, nil, usageErrorf("%s: %q is not a valid manifest (%w): rebuild it with 'relaymesh package build'", cmd, path, err)
	}
	return m, core.FragmentCID(data), data, nil
}

func (a *app) packageInspect(c *cli.Context) error {
	path, err := oneArg(c, "MANIFEST_FILE", false)
	if err != nil {
		return err
	}
	m, id, _, err := readManifestFile("package inspect", path)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeManifestJSON(a.stdout, id, m)
	}
	return writeManifestTable(a.stdout, id, m)
}

func writeManifestJSON(w io.Writer, id cid.Cid, m *core.Manifest) error {
	out := struct {
		ID string `json:"id"`
		*core.Manifest
	}{id.String(), m}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("package inspect: write JSON: %w", err)
	}
	return nil
}

func writeManifestTable(w io.Writer, id cid.Cid, m *core.Manifest) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("package ID", id.String())
	row("name", m.Name)
	row("version", m.Version)
	row("os/arch", m.OS+"/"+m.Arch)
	row("action", string(m.Action))
	if len(m.Command) > 0 {
		row("command", quoteArgv(m.Command))
	}
	if m.StorePath != "" {
		row("store path", m.StorePath)
	}
	if len(m.Command) > 0 {
		row("success codes", m.SuccessCodeList())
	}
	if len(m.Uninstall) > 0 {
		row("uninstall", quoteArgv(m.Uninstall))
	}
	row("priority", strconv.Itoa(m.Priority))
	if m.TimeoutSec > 0 {
		row("timeout", strconv.FormatInt(m.TimeoutSec, 10)+"s")
	} else {
		row("timeout", "node default")
	}
	if m.Size == 0 {
		row("archive", "none")
	} else {
		row("size", fmt.Sprintf("%s (%d bytes)", humanBytes(m.Size), m.Size))
		row("fragments", strconv.Itoa(len(m.Fragments)))
		row("fragment size", fmt.Sprintf("%s (%d bytes)", humanBytes(int64(m.FragmentSize)), m.FragmentSize))
		row("digest", m.Digest)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("package inspect: %w", err)
	}
	return nil
}

func (a *app) packageVerify(c *cli.Context) error {
	const cmd = "package verify"
	path, err := oneArg(c, "MANIFEST_FILE", false)
	if err != nil {
		return err
	}
	m, id, data, err := readManifestFile(cmd, path)
	if err != nil {
		return err
	}
	archivePath := c.String("archive")
	if archivePath != "" && m.Size == 0 {
		return usageErrorf("%s: --archive %q given, but package %s has no archive", cmd, archivePath, id)
	}
	var archive *os.File
	if archivePath != "" {
		f, err := os.Open(archivePath)
		if err != nil {
			return usageErrorf("%s: --archive %q cannot be read: %w", cmd, archivePath, err)
		}
		defer f.Close()
		archive = f
	}
	storeDir := c.String("store")
	if st, err := os.Stat(storeDir); err != nil || !st.IsDir() {
		return usageErrorf("%s: store %q does not exist: give the store the package was built into with --store", cmd, storeDir)
	}
	if err := verifyPackage(storeDir, a.log, a.quietLog(), m, id, data); err != nil {
		return err
	}
	if archive != nil {
		if err := verifyArchive(archive, archivePath, m); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return a.printJSON(struct {
			PackageID string `json:"package_id"`
			Name      string `json:"name"`
			Version   string `json:"version"`
			Size      int64  `json:"size"`
			Fragments int    `json:"fragments"`
			Verified  string `json:"verified"`
		}{id.String(), m.Name, m.Version, m.Size, len(m.Fragments), map[bool]string{true: "store+archive", false: "store"}[archive != nil]})
	}
	if !a.quiet {
		what := "store " + storeDir
		if archive != nil {
			what += " and archive " + archivePath
		}
		fmt.Fprintf(a.stderr, "%s %s: manifest and %d fragments (%s) verified against %s\n",
			m.Name, m.Version, len(m.Fragments), humanBytes(m.Size), what)
	}
	fmt.Fprintln(a.stdout, "OK", id)
	return nil
}

// verifyPackage checks that the store holds the manifest and every
// fragment, each matching its CID, and that the fragments in order make up
// the archive digest. The store re-hashes on read and drops a fragment
// that does not match.
func verifyPackage(storeDir string, log, storeLog *slog.Logger, m *core.Manifest, id cid.Cid, data []byte) (err error) {
	const cmd = "package verify"
	st, err := openStore(storeDir, storeLog)
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close store %q: %w", cmd, storeDir, cerr)
		}
	}()
	stored, err := st.Get(id)
	switch {
	case errors.Is(err, cache.ErrNotFound):
		return usageErrorf("%s: manifest %s is not in store %q: rebuild the package into this store", cmd, id, storeDir)
	case errors.Is(err, core.ErrDigestMismatch):
		return usageErrorf("%s: manifest %s in store %q is corrupt (dropped): rebuild the package", cmd, id, storeDir)
	case err != nil:
		return fmt.Errorf("%s: read manifest %s: %w", cmd, id, err)
	case !bytes.Equal(stored, data):
		return fmt.Errorf("%s: manifest %s in store %q differs from the file", cmd, id, storeDir)
	}
	sum := sha256.New()
	for i, c := range m.FragmentCIDs() {
		frag, err := st.Get(c)
		switch {
		case errors.Is(err, cache.ErrNotFound):
			return usageErrorf("%s: fragment %d (%s) is missing from store %q: rebuild the package into this store", cmd, i, c, storeDir)
		case errors.Is(err, core.ErrDigestMismatch):
			return usageErrorf("%s: fragment %d (%s) does not match its CID: the store %q is corrupt (the fragment was dropped); rebuild the package", cmd, i, c, storeDir)
		case err != nil:
			return fmt.Errorf("%s: read fragment %d (%s): %w", cmd, i, c, err)
		}
		if int64(len(frag)) != m.FragmentLen(i) {
			return usageErrorf("%s: fragment %d (%s) is %d bytes, the manifest says %d: the manifest is inconsistent", cmd, i, c, len(frag), m.FragmentLen(i))
		}
		sum.Write(frag)
		log.Debug("fragment verified", "index", i, "cid", c)
	}
	if m.Size > 0 {
		if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != m.Digest {
			return usageErrorf("%s: the %d fragments in order hash to %s, the manifest's archive digest is %s: the manifest is inconsistent; rebuild the package",
				cmd, len(m.Fragments), got, m.Digest)
		}
	}
	return nil
}

// verifyArchive re-chunks the archive and compares it with the manifest.
func verifyArchive(r io.Reader, path string, m *core.Manifest) error {
	const cmd = "package verify"
	want := m.FragmentCIDs()
	i := 0
	info, err := core.Chunk(r, m.FragmentSize, func(c cid.Cid, _ []byte) error {
		if i >= len(want) {
			return fmt.Errorf("archive %q has more than the manifest's %d fragments", path, len(want))
		}
		if !c.Equals(want[i]) {
			return fmt.Errorf("archive %q fragment %d is %s, the manifest lists %s", path, i, c, want[i])
		}
		i++
		return nil
	})
	if err != nil {
		return usageErrorf("%s: %w", cmd, err)
	}
	if info.Size != m.Size || info.Digest != m.Digest || i != len(want) {
		return usageErrorf("%s: archive %q is %d bytes with digest %s in %d fragments, the manifest says %d bytes, %s, %d fragments",
			cmd, path, info.Size, info.Digest, i, m.Size, m.Digest, len(want))
	}
	return nil
}
