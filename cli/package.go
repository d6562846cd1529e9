package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/units"
)

// defaultStoreDir is where package build puts fragments unless --store says
// otherwise.
const defaultStoreDir = "./relaymesh-store"

func (a *app) packageCommand() *cli.Command {
	storeFlag := func(usage string) cli.Flag {
		return &cli.StringFlag{Name: "store", Value: defaultStoreDir, Usage: usage}
	}
	return &cli.Command{
		Name:  "package",
		Usage: "build, inspect and verify packages",
		Subcommands: append([]*cli.Command{
			{
				Name:      "build",
				Usage:     "cut an archive into fragments, store them and write the package manifest",
				UsageText: "relaymesh package build --name NAME --version VERSION --action ACTION [flags] [ARCHIVE]\n   relaymesh package build [flags] FILE.deb",
				Description: "Streams ARCHIVE through the chunker, puts every fragment and the manifest into the " +
					"fragment store (--store), pins them, writes the manifest file (--out) last and prints the " +
					"package ID. ARCHIVE may be left out (or --no-archive given) for --action execute.\n\n" +
					"--command and --uninstall take one string split into argv like a shell splits words: " +
					"blanks separate, '...' and \"...\" quote; nothing is expanded and no shell ever runs it. " +
					"Example: --command 'setup.sh --mode \"full install\"'.\n\n" +
					"A Debian package (FILE.deb) needs no --name, --version, --arch or --action: they come from its " +
					"control file, and nodes install it with apt/dpkg (action deb) and remove it by name. " +
					"An ARCHIVE that is neither tar.gz, zip nor .deb is refused.\n\n" +
					"Flags go before ARCHIVE.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "package name (letters, digits, '.', '_', '+', '-')"},
					&cli.StringFlag{Name: "version", Usage: "package version (same characters as --name)"},
					&cli.StringFlag{Name: "os", Value: runtime.GOOS, Usage: "target OS: linux, windows, darwin or any"},
					&cli.StringFlag{Name: "arch", Value: runtime.GOARCH, Usage: "target architecture: amd64, arm64, 386, arm or any"},
					&cli.StringFlag{Name: "action", Usage: "launch (extract, run --command there), execute (run --command) or store (extract to --store-path); not for a .deb, which is action deb"},
					&cli.StringFlag{Name: "command", Usage: "command to run, one string split into argv (see above)"},
					&cli.StringFlag{Name: "store-path", Usage: "absolute directory to extract to, for --action store"},
					&cli.StringFlag{Name: "uninstall", Usage: "command that undoes the install (rollback), split like --command"},
					&cli.StringFlag{Name: "success-codes", Usage: "comma-separated exit codes of --command that mean installed (default 0; 3010 and 1641 always mean installed, reboot needed), e.g. 0,2"},
					&cli.IntFlag{Name: "priority", Value: 5, Usage: "priority from 0 (first) to 10 (last)"},
					&cli.DurationFlag{Name: "timeout", Usage: "install timeout in whole seconds, like 10m (0: the node's default)"},
					&cli.StringFlag{Name: "fragment-size", Value: "1MiB", Usage: "fragment size, 64KiB to 64MiB: 65536, 64KiB, 1MiB, 1.5MB"},
					&cli.BoolFlag{Name: "no-archive", Usage: "the package has no archive (only with --action execute)"},
					storeFlag("fragment store directory (created if missing)"),
					&cli.StringFlag{Name: "out", Usage: "manifest file to write (default NAME-VERSION.manifest.json)"},
					&cli.BoolFlag{Name: "quiet", Usage: "no progress bar or summary; print only the package ID"},
					&cli.BoolFlag{Name: "json", Usage: "print package_id, name, version, size, fragments, manifest_file, store and published as JSON"},
					&cli.BoolFlag{Name: "publish", Usage: "upload to the coordinator after building (implied by --coordinator-url/--coordinator-dir)"},
					&cli.StringFlag{Name: "coordinator-url", Usage: "admin API URL: upload the package after building"},
					&cli.StringFlag{Name: "coordinator-dir", Usage: "a local coordinator's directory: upload the package after building"},
					&cli.StringFlag{Name: "admin-token", Usage: "admin bearer token (prefer --token-file)"},
					&cli.StringFlag{Name: "token-file", Usage: "file holding the admin token"},
					&cli.StringFlag{Name: "ca", Usage: "CA certificate (PEM) of the admin API"},
				},
				Action: a.packageBuild,
			},
			{
				Name:      "inspect",
				Usage:     "show a manifest file",
				UsageText: "relaymesh package inspect [--json] MANIFEST_FILE",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print the manifest and its package ID as JSON"},
				},
				Action: a.packageInspect,
			},
			{
				Name:      "verify",
				Usage:     "re-hash a package's fragments in a store (and optionally against the archive)",
				UsageText: "relaymesh package verify [--store DIR] [--archive FILE] [--json] MANIFEST_FILE",
				Description: "Reads every fragment the manifest lists from the store, checks each against its CID " +
					"and the whole against the archive digest. With --archive it also re-chunks the archive and " +
					"compares the CIDs. A fragment that fails is named by index and CID (and dropped by the store).",
				Flags: []cli.Flag{
					storeFlag("fragment store directory to check"),
					&cli.StringFlag{Name: "archive", Usage: "original archive to compare the fragment CIDs with"},
					&cli.BoolFlag{Name: "json", Usage: "print package_id, name, version, size, fragments and verified as JSON"},
				},
				Action: a.packageVerify,
			},
		}, a.publishCommands()...),
	}
}

// oneArg returns the single positional argument what (or "" if there is
// none and optional), refusing extra arguments and flags placed after it.
func oneArg(c *cli.Context, what string, optional bool) (string, error) {
	args := c.Args().Slice()
	cmd := cmdPath(c)
	for _, s := range args[min(1, len(args)):] {
		if strings.HasPrefix(s, "-") {
			return "", usageErrorf("%s: flag %q after %s: put flags before %s (relaymesh %s [flags] %s)", cmd, s, what, what, cmd, what)
		}
	}
	switch {
	case len(args) > 1:
		return "", usageErrorf("%s: %d arguments %q: want one %s; quote a --command that has spaces", cmd, len(args), args, what)
	case len(args) == 0 && !optional:
		return "", usageErrorf("%s: missing %s: relaymesh %s [flags] %s", cmd, what, cmd, what)
	case len(args) == 0:
		return "", nil
	}
	return args[0], nil
}

func (a *app) packageBuild(c *cli.Context) error {
	archivePath, err := oneArg(c, "ARCHIVE", true)
	if err != nil {
		return err
	}
	spec, err := buildSpecFromFlags(c, archivePath)
	if err != nil {
		return err
	}
	// The archive is checked last among the inputs, but before the store is
	// opened or anything is written.
	var archive *os.File
	var size int64
	if spec.archivePath != "" {
		archive, size, err = openArchive(spec.archivePath)
		if err != nil {
			return err
		}
		defer archive.Close()
	}
	if archive != nil {
		spec.archive, spec.archiveSize = archive, size
	}
	spec.log = a.log
	spec.storeLog = a.quietLog()
	if !a.quiet && !c.Bool("quiet") && a.isTerminal(a.stderr) {
		spec.progress = a.stderr
	}
	res, err := buildPackage(c.Context, spec)
	if err != nil {
		return err
	}
	if wantsPublish(c) {
		data, err := res.manifest.Encode()
		if err != nil {
			return err
		}
		if _, err := a.publish(c, data, spec.storeDir); err != nil {
			return err
		}
		if !a.quiet && !c.Bool("quiet") {
			fmt.Fprintf(a.stderr, "published %s to the coordinator\n", res.id)
		}
	}
	if c.Bool("json") {
		m := res.manifest
		return a.printJSON(struct {
			PackageID    string `json:"package_id"`
			Name         string `json:"name"`
			Version      string `json:"version"`
			Size         int64  `json:"size"`
			Fragments    int    `json:"fragments"`
			ManifestFile string `json:"manifest_file"`
			Store        string `json:"store"`
			Published    bool   `json:"published"`
		}{res.id.String(), m.Name, m.Version, m.Size, len(m.Fragments), spec.out, spec.storeDir, wantsPublish(c)})
	}
	if !a.quiet && !c.Bool("quiet") {
		what := "no archive"
		if m := res.manifest; m.Size > 0 {
			what = fmt.Sprintf("%s in %d fragments", humanBytes(m.Size), len(m.Fragments))
		}
		fmt.Fprintf(a.stderr, "built %s %s (%s); manifest %s, store %s\n",
			res.manifest.Name, res.manifest.Version, what, spec.out, spec.storeDir)
	}
	fmt.Fprintln(a.stdout, res.id)
	return nil
}

// buildSpecFromFlags checks every flag and returns what package build is
// to do. Nothing is read or written yet.
func buildSpecFromFlags(c *cli.Context, archivePath string) (*buildSpec, error) {
	const cmd = "package build"
	m := core.Manifest{
		Schema:    core.ManifestSchema,
		Name:      c.String("name"),
		Version:   c.String("version"),
		OS:        c.String("os"),
		Arch:      c.String("arch"),
		Action:    core.Action(c.String("action")),
		StorePath: c.String("store-path"),
		Priority:  c.Int("priority"),
	}
	kind, head := "", []byte(nil)
	if archivePath != "" {
		kind, head = sniffArchive(archivePath)
	}
	if kind == kindDeb {
		if err := fillFromDeb(&m, archivePath, c.IsSet); err != nil {
			return nil, err
		}
	}
	switch {
	case m.Name == "":
		return nil, usageErrorf("%s: --name is empty: name the package, e.g. --name agent", cmd)
	case m.Version == "":
		return nil, usageErrorf("%s: --version is empty: give the package version, e.g. --version 1.2.3", cmd)
	}
	switch m.Action {
	case core.ActionLaunch, core.ActionExecute, core.ActionStore:
	case core.ActionDeb:
		if kind != kindDeb && kind != "" {
			return nil, usageErrorf("%s: --action deb needs a .deb ARCHIVE (package build [flags] FILE.deb)", cmd)
		}
	case "":
		return nil, usageErrorf("%s: --action is empty: want launch, execute or store (or give a .deb)", cmd)
	default:
		return nil, usageErrorf("%s: --action %q: unknown action: want launch, execute or store (or give a .deb)", cmd, m.Action)
	}
	if kind == kindUnknown {
		return nil, unknownArchive(archivePath, head)
	}
	if m.Priority < 0 || m.Priority > 10 {
		return nil, usageErrorf("%s: --priority %d: must be between 0 and 10", cmd, m.Priority)
	}
	fragSize, err := units.ParseSize(c.String("fragment-size"))
	if err != nil {
		return nil, usageErrorf("%s: --fragment-size: %w", cmd, err)
	}
	if fragSize < core.MinFragmentSize || fragSize > core.MaxFragmentSize {
		return nil, usageErrorf("%s: --fragment-size %s (%d bytes): must be between 64KiB and 64MiB",
			cmd, c.String("fragment-size"), fragSize)
	}
	timeout := c.Duration("timeout")
	if timeout < 0 || timeout%time.Second != 0 {
		return nil, usageErrorf("%s: --timeout %s: must be zero or a positive whole number of seconds, like 90s or 10m", cmd, timeout)
	}
	m.TimeoutSec = int64(timeout / time.Second)
	if m.Command, err = splitArgv(c.String("command")); err != nil {
		return nil, usageErrorf("%s: --command: %w", cmd, err)
	}
	if m.SuccessCodes, err = parseSuccessCodes(c.String("success-codes")); err != nil {
		return nil, usageErrorf("%s: --success-codes %q: %v", cmd, c.String("success-codes"), err)
	}
	if len(m.SuccessCodes) > 0 && c.String("command") == "" {
		return nil, usageErrorf("%s: --success-codes %q: the package has no --command whose exit code they would judge", cmd, c.String("success-codes"))
	}
	if m.Uninstall, err = splitArgv(c.String("uninstall")); err != nil {
		return nil, usageErrorf("%s: --uninstall: %w", cmd, err)
	}

	noArchive := c.Bool("no-archive")
	switch {
	case noArchive && archivePath != "":
		return nil, usageErrorf("%s: --no-archive and ARCHIVE %q both given: drop one", cmd, archivePath)
	case (m.Action == core.ActionLaunch || m.Action == core.ActionExecute) && len(m.Command) == 0:
		return nil, usageErrorf("%s: --action %s needs --command: give the program and its arguments, e.g. --command './install.sh --quiet'", cmd, m.Action)
	case m.Action == core.ActionStore && m.StorePath == "":
		return nil, usageErrorf("%s: --action store needs --store-path: give the absolute directory to extract to", cmd)
	case m.Action != core.ActionStore && m.StorePath != "":
		return nil, usageErrorf("%s: --store-path %q given with --action %s: only --action store extracts to a path", cmd, m.StorePath, m.Action)
	case m.Action == core.ActionDeb && archivePath == "":
		return nil, usageErrorf("%s: --action deb needs the .deb: relaymesh package build FILE.deb", cmd)
	case m.Action != core.ActionExecute && archivePath == "":
		return nil, usageErrorf("%s: --action %s needs an ARCHIVE: relaymesh package build [flags] ARCHIVE", cmd, m.Action)
	}

	// Let core check the rest (name and version characters, OS, arch,
	// store path, argv) now, with stand-ins for the archive fields.
	probe := m
	if archivePath != "" {
		probe.Size, probe.FragmentSize = 1, int(fragSize)
		probe.Digest = "sha256:" + strings.Repeat("0", 64)
		probe.Fragments = []string{core.FragmentCID(nil).String()}
	}
	if err := probe.Validate(); err != nil {
		return nil, usageErrorf("%s: %w", cmd, err)
	}

	out := c.String("out")
	if out == "" {
		out = m.Name + "-" + m.Version + ".manifest.json"
	}
	if st, err := os.Stat(filepath.Dir(out)); err != nil || !st.IsDir() {
		return nil, usageErrorf("%s: --out %q: directory %q does not exist: create it or choose another path", cmd, out, filepath.Dir(out))
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return nil, usageErrorf("%s: --out %q is a directory: give a file name", cmd, out)
	}
	storeDir := c.String("store")
	if storeDir == "" {
		return nil, usageErrorf("%s: --store is empty: give the fragment store directory, e.g. --store %s", cmd, defaultStoreDir)
	}
	if st, err := os.Stat(storeDir); err == nil && !st.IsDir() {
		return nil, usageErrorf("%s: --store %q is not a directory: give a directory", cmd, storeDir)
	}
	return &buildSpec{
		manifest:    m,
		archivePath: archivePath,
		fragSize:    int(fragSize),
		storeDir:    storeDir,
		out:         out,
	}, nil
}

// openArchive opens a regular, non-empty archive file.
func openArchive(path string) (*os.File, int64, error) {
	const cmd = "package build"
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, 0, usageErrorf("%s: archive %q does not exist: check the path", cmd, path)
	case err != nil:
		return nil, 0, usageErrorf("%s: archive %q cannot be read: %w", cmd, path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, usageErrorf("%s: archive %q: %w", cmd, path, err)
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, usageErrorf("%s: archive %q is a directory: give the archive file (tar.gz, zip)", cmd, path)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, usageErrorf("%s: archive %q is not a regular file (%s): give the archive file", cmd, path, st.Mode().Type())
	}
	if st.Size() == 0 {
		f.Close()
		return nil, 0, usageErrorf("%s: archive %q: %w: give a non-empty archive, or use --action execute without one", cmd, path, core.ErrEmptyArchive)
	}
	return f, st.Size(), nil
}

// parseSuccessCodes reads --success-codes: comma-separated exit codes,
// each listed once; "" is none (the default, 0).
func parseSuccessCodes(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int64
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n < 0 || n > 1<<32-1 {
			return nil, fmt.Errorf("%q is not an exit code (0 to 4294967295)", f)
		}
		if slices.Contains(out, n) {
			return nil, fmt.Errorf("%d listed twice", n)
		}
		out = append(out, n)
	}
	if len(out) > core.MaxSuccessCodes {
		return nil, fmt.Errorf("%d codes, at most %d", len(out), core.MaxSuccessCodes)
	}
	return out, nil
}
