package core

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
)

// Action is what a node does with a package (the OCS actions).
type Action string

const (
	ActionLaunch  Action = "launch"  // extract to a temp dir and run the command there
	ActionExecute Action = "execute" // run a command; the archive is optional
	ActionStore   Action = "store"   // extract to StorePath
	// ActionDeb: the archive is a Debian package; the node installs it
	// with its own apt/dpkg and removes it by name (Name, Version and
	// Arch come from its control file).
	ActionDeb Action = "deb"
	// ActionApt: the archive is a tar.gz of a repository's files, which
	// the coordinator checked by apt's chain of trust: lists/ (InRelease
	// and the indexes, placed into the node's apt lists dir) and debs/
	// (the .debs of updates, installed by apt in one transaction, never
	// downloaded by the node). The coordinator builds these for patch
	// deployments (deploy create --updates).
	ActionApt Action = "apt"
)

// AptUpgradeOnly is the file an apt package carries when its .debs are
// upgrades: the node upgrades only what it has installed (apt-get
// --only-upgrade), pulling in their new dependencies.
const AptUpgradeOnly = "upgrade-only"

// ManifestSchema is the manifest format version.
const ManifestSchema = 1

// MaxManifestBytes caps a manifest's encoding (a 64 GiB package at 1 MiB
// fragments lists 65,536 CIDs of ~60 bytes each).
const MaxManifestBytes = 8 << 20

// Manifest describes a package. Its CID (see ID) is the package ID.
type Manifest struct {
	Schema       int      `json:"schema"`
	Name         string   `json:"name"`
	Version      string   `json:"version"`
	OS           string   `json:"os"`
	Arch         string   `json:"arch"`
	Action       Action   `json:"action"`
	Command      []string `json:"command,omitempty"`
	StorePath    string   `json:"store_path,omitempty"`
	Priority     int      `json:"priority"`
	TimeoutSec   int64    `json:"timeout_s,omitempty"`
	Uninstall    []string `json:"uninstall,omitempty"`
	Size         int64    `json:"size"`
	Digest       string   `json:"digest,omitempty"`
	FragmentSize int      `json:"fragment_size,omitempty"`
	Fragments    []string `json:"fragments,omitempty"`
	// SuccessCodes are the exit codes of Command that mean installed;
	// none declared means 0. 3010 and 1641 (the Windows installer's
	// "installed, reboot required / initiated") always do. Any other
	// code fails the install with ERR_EXECUTE. Last, and omitted when
	// empty, so manifests without it encode as before.
	SuccessCodes []int64 `json:"success_codes,omitempty"`
}

// MaxSuccessCodes bounds Manifest.SuccessCodes.
const MaxSuccessCodes = 32

// maxExitCode is the largest exit code a process can have (Windows: a
// 32-bit unsigned DWORD; Unix: 255).
const maxExitCode = 1<<32 - 1

// Reboot codes: installed, and a reboot is needed (or started).
const (
	ExitRebootRequired  = 3010 // ERROR_SUCCESS_REBOOT_REQUIRED
	ExitRebootInitiated = 1641 // ERROR_SUCCESS_REBOOT_INITIATED
)

// RebootCode reports whether an exit code says installed, reboot needed.
func RebootCode(code int) bool { return code == ExitRebootRequired || code == ExitRebootInitiated }

// Succeeded reports whether Command exiting with code means the package
// is installed: one of SuccessCodes (0 when none are declared) or a
// reboot code.
func (m *Manifest) Succeeded(code int) bool {
	if RebootCode(code) {
		return true
	}
	if len(m.SuccessCodes) == 0 {
		return code == 0
	}
	return slices.Contains(m.SuccessCodes, int64(code))
}

// SuccessCodeList is the exit codes that mean installed, for people:
// "0", or "0, 2", plus the reboot codes.
func (m *Manifest) SuccessCodeList() string {
	codes := m.SuccessCodes
	if len(codes) == 0 {
		codes = []int64{0}
	}
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprint(c)
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" (and %d, %d: reboot needed)", ExitRebootRequired, ExitRebootInitiated)
}

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	// debVersionRe is Debian's version syntax: [epoch:]upstream[-revision].
	debVersionRe = regexp.MustCompile(`^([0-9]{1,9}:)?[0-9][A-Za-z0-9.+~-]{0,126}$`)
	knownOS      = []string{"linux", "windows", "darwin", "any"}
	knownArch    = []string{"amd64", "arm64", "386", "arm", "any"}
)

// Validate checks every field and names the first bad one.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadManifest, fmt.Sprintf(format, a...))
	}
	if m.Schema != ManifestSchema {
		return bad("schema %d: want %d", m.Schema, ManifestSchema)
	}
	if !nameRe.MatchString(m.Name) {
		return bad("name %q: use 1-128 letters, digits, '.', '_', '+' or '-'", m.Name)
	}
	if m.Action == ActionDeb || m.Action == ActionApt {
		if !debVersionRe.MatchString(m.Version) {
			return bad("version %q: not a Debian version ([epoch:]upstream[-revision], upstream starting with a digit)", m.Version)
		}
	} else if !nameRe.MatchString(m.Version) {
		return bad("version %q: use 1-128 letters, digits, '.', '_', '+' or '-'", m.Version)
	}
	if !slices.Contains(knownOS, m.OS) {
		return bad("os %q: want one of %s", m.OS, strings.Join(knownOS, ", "))
	}
	if !slices.Contains(knownArch, m.Arch) {
		return bad("arch %q: want one of %s", m.Arch, strings.Join(knownArch, ", "))
	}
	if m.Priority < 0 || m.Priority > 10 {
		return bad("priority %d: must be between 0 and 10", m.Priority)
	}
	if m.TimeoutSec < 0 {
		return bad("timeout %ds: must not be negative", m.TimeoutSec)
	}
	if err := checkArgv("command", m.Command); err != nil {
		return bad("%v", err)
	}
	if err := checkArgv("uninstall", m.Uninstall); err != nil {
		return bad("%v", err)
	}
	if len(m.SuccessCodes) > MaxSuccessCodes {
		return bad("%d success codes: at most %d", len(m.SuccessCodes), MaxSuccessCodes)
	}
	for i, c := range m.SuccessCodes {
		if c < 0 || c > maxExitCode {
			return bad("success code %d: must be an exit code from 0 to %d", c, int64(maxExitCode))
		}
		if slices.Contains(m.SuccessCodes[:i], c) {
			return bad("success code %d listed twice", c)
		}
	}
	if len(m.SuccessCodes) > 0 && len(m.Command) == 0 {
		return bad("success codes given for a package without a command")
	}
	hasArchive := m.Size > 0
	switch m.Action {
	case ActionLaunch:
		if len(m.Command) == 0 {
			return bad("action launch needs a command")
		}
		if !hasArchive {
			return bad("action launch needs an archive")
		}
	case ActionExecute:
		if len(m.Command) == 0 {
			return bad("action execute needs a command")
		}
	case ActionStore:
		if m.StorePath == "" {
			return bad("action store needs a store path")
		}
		if !hasArchive {
			return bad("action store needs an archive")
		}
	case ActionDeb:
		if !hasArchive {
			return bad("action deb needs the .deb as its archive")
		}
		if len(m.Command) != 0 || len(m.Uninstall) != 0 {
			return bad("action deb takes no command or uninstall: the node installs the .deb with apt/dpkg and removes it by name")
		}
		if m.OS != "linux" {
			return bad("action deb: os %q: a Debian package is for linux", m.OS)
		}
	case ActionApt:
		if !hasArchive {
			return bad("action apt needs an archive of repository files")
		}
		if len(m.Command) != 0 || len(m.Uninstall) != 0 {
			return bad("action apt takes no command or uninstall: the node places the lists and installs the .debs with apt")
		}
		if m.OS != "linux" {
			return bad("action apt: os %q: Debian repository files are for linux", m.OS)
		}
	default:
		return bad("action %q: want launch, execute, store, deb or apt", m.Action)
	}
	if m.Action != ActionStore && m.StorePath != "" {
		return bad("store path %q given for action %s", m.StorePath, m.Action)
	}
	if m.StorePath != "" && (strings.ContainsRune(m.StorePath, 0) || !isAbs(m.StorePath)) {
		return bad("store path %q: must be an absolute path", m.StorePath)
	}
	if !utf8.ValidString(m.StorePath) {
		return bad("store path %q: not valid UTF-8", m.StorePath)
	}
	if m.Size < 0 {
		return bad("size %d: must not be negative", m.Size)
	}
	if !hasArchive {
		if m.Digest != "" || m.FragmentSize != 0 || len(m.Fragments) != 0 {
			return bad("a package without archive has no digest, fragment size or fragments")
		}
		return nil
	}
	if !digestRe.MatchString(m.Digest) {
		return bad("digest %q: want sha256:<64 hex digits>", m.Digest)
	}
	if err := CheckFragmentSize(m.FragmentSize); err != nil {
		return bad("%v", err)
	}
	want := (m.Size + int64(m.FragmentSize) - 1) / int64(m.FragmentSize)
	if int64(len(m.Fragments)) != want {
		return bad("%d fragments listed, size %d at fragment size %d needs %d", len(m.Fragments), m.Size, m.FragmentSize, want)
	}
	for i, s := range m.Fragments {
		c, err := ParseCID(s)
		if err != nil {
			return bad("fragment %d: %v", i, err)
		}
		if c.String() != s {
			return bad("fragment %d: %q is not in canonical base32 form", i, s)
		}
	}
	return nil
}

func isAbs(p string) bool {
	if strings.HasPrefix(p, "/") {
		return true
	}
	// Windows: C:\ or C:/
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/') &&
		(p[0] >= 'A' && p[0] <= 'Z' || p[0] >= 'a' && p[0] <= 'z')
}

func checkArgv(field string, argv []string) error {
	if len(argv) > 256 {
		return fmt.Errorf("%s: %d arguments, at most 256", field, len(argv))
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("%s: argument %d holds a NUL byte", field, i)
		}
		if !utf8.ValidString(a) {
			return fmt.Errorf("%s: argument %d %q is not valid UTF-8", field, i, a)
		}
		if i == 0 && a == "" {
			return fmt.Errorf("%s: program name is empty", field)
		}
	}
	return nil
}

// FragmentCIDs returns the parsed fragment CIDs of a validated manifest.
func (m *Manifest) FragmentCIDs() []cid.Cid {
	out := make([]cid.Cid, 0, len(m.Fragments))
	for _, s := range m.Fragments {
		c, err := cid.Decode(s)
		if err != nil {
			continue // Validate rejects this
		}
		out = append(out, c)
	}
	return out
}

// FragmentLen is the length of fragment i.
func (m *Manifest) FragmentLen(i int) int64 {
	if i == len(m.Fragments)-1 {
		return m.Size - int64(i)*int64(m.FragmentSize)
	}
	return int64(m.FragmentSize)
}

// Encode validates m and returns its canonical encoding.
func (m *Manifest) Encode() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := encodeCanonical(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: encoding is %d bytes, at most %d", ErrBadManifest, len(b), MaxManifestBytes)
	}
	return b, nil
}

// ID returns the manifest's CID, which is the package ID, and its encoding.
func (m *Manifest) ID() (cid.Cid, []byte, error) {
	b, err := m.Encode()
	if err != nil {
		return cid.Undef, nil, err
	}
	return FragmentCID(b), b, nil
}

// DecodeManifest parses and validates a canonical manifest encoding.
func DecodeManifest(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadManifest, len(data), MaxManifestBytes)
	}
	var m Manifest
	if err := decodeCanonical(data, &m, "manifest"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadManifest, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// DecodeManifestFor decodes data and checks that it is the manifest id names.
func DecodeManifestFor(id cid.Cid, data []byte) (*Manifest, error) {
	if err := VerifyBytes(id, data); err != nil {
		return nil, err
	}
	return DecodeManifest(data)
}
