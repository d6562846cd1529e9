package core

import (
	"crypto/ed25519"
	"fmt"
	"time"
	"unicode/utf8"
)

// A scan report is one node's inventory and the updates its repositories
// offer, signed by the node's key like a status report. It takes the next
// number of the node's status sequence, so it travels the same outbox and
// relays and is deduped and acknowledged (Receipt) like one.

// TypeScan is the payload type of a scan report.
const TypeScan = "relaymesh/scan/v1"

// KindScan is an order that asks its targets to scan now. It carries only
// targets and its lifetime.
const KindScan = "scan"

// ScanSchema is the scan report format version.
const ScanSchema = 1

// Caps of one scan report. A node that has more installed packages than
// fit drops the inventory list (Truncated), never the updates.
const (
	MaxScanBytes    = 2 << 20
	MaxScanPackages = 50_000
	MaxScanUpdates  = 20_000
	maxScanField    = 256
)

// ScanReport is one node's scan.
type ScanReport struct {
	Schema int       `json:"schema"`
	NodeID string    `json:"node"`
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"` // when the scan finished
	// Order is the scan order that asked for it, "" for a periodic scan.
	Order string `json:"order,omitempty"`
	Inventory
}

// Inventory is what a scan found.
type Inventory struct {
	// Manager is the package manager scanned: "dpkg".
	Manager        string    `json:"manager"`
	OS             OSRelease `json:"os"`
	Kernel         string    `json:"kernel,omitempty"`
	RebootRequired bool      `json:"reboot_required,omitempty"`
	// RebootPackages are the packages that asked for the reboot.
	RebootPackages []string `json:"reboot_packages,omitempty"`
	// InstalledCount is how many packages are installed; Installed lists
	// them unless Truncated.
	InstalledCount int       `json:"installed_count"`
	Installed      []Package `json:"installed,omitempty"`
	Truncated      bool      `json:"truncated,omitempty"`
	// Broken are packages dpkg left half-installed or half-configured.
	Broken  []Package `json:"broken,omitempty"`
	Updates []Update  `json:"updates,omitempty"`
	// New are the packages the simulated upgrade would newly install
	// (new dependencies of the updates), Version the candidate.
	New []Package `json:"new,omitempty"`
	// ListsTime is when the newest repository index the scan used was
	// written (how fresh "available" is); zero when unknown.
	ListsTime time.Time `json:"lists_time,omitzero"`
	// Error, when set, says why the scan could not list updates; the
	// fields above hold what it did find.
	Error string `json:"error,omitempty"`
}

// OSRelease is the part of /etc/os-release a scan keeps.
type OSRelease struct {
	ID         string `json:"id,omitempty"`
	VersionID  string `json:"version_id,omitempty"`
	Codename   string `json:"codename,omitempty"`
	PrettyName string `json:"pretty_name,omitempty"`
}

// Package is an installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	// Status is dpkg's state word when it is not "installed".
	Status string `json:"status,omitempty"`
}

// Update is one package a node's repositories offer a newer version of.
type Update struct {
	Name      string `json:"name"`
	Arch      string `json:"arch,omitempty"`
	Installed string `json:"installed"`
	Candidate string `json:"candidate"`
	Security  bool   `json:"security,omitempty"`
	// Suites are where the candidate comes from (archive or codename of
	// each repository that has it).
	Suites []string `json:"suites,omitempty"`
}

// SecurityCount returns how many of the updates are security updates.
func (in *Inventory) SecurityCount() int {
	k := 0
	for _, u := range in.Updates {
		if u.Security {
			k++
		}
	}
	return k
}

// Validate checks the report's fields.
func (r *ScanReport) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadScan, fmt.Sprintf(format, a...))
	}
	if r.Schema != ScanSchema {
		return bad("schema %d: want %d", r.Schema, ScanSchema)
	}
	if r.NodeID == "" || len(r.NodeID) > 128 || !utf8.ValidString(r.NodeID) {
		return bad("node %q: not a node ID (1-128 bytes of UTF-8)", r.NodeID)
	}
	if r.Seq == 0 {
		return bad("sequence 0: must be positive")
	}
	if r.Time.IsZero() || r.Time.Location() != time.UTC {
		return bad("time %v: want a UTC time", r.Time)
	}
	if r.Order != "" && !orderIDRe.MatchString(r.Order) {
		return bad("order %q: not an order ID", r.Order)
	}
	if r.Manager != "dpkg" {
		return bad("manager %q: want dpkg", r.Manager)
	}
	if len(r.Installed) > MaxScanPackages || len(r.Broken) > MaxScanPackages || r.InstalledCount < 0 ||
		r.InstalledCount > 10*MaxScanPackages {
		return bad("%d installed packages listed (count %d): at most %d", len(r.Installed), r.InstalledCount, MaxScanPackages)
	}
	if len(r.Updates) > MaxScanUpdates || len(r.New) > MaxScanUpdates {
		return bad("%d updates, %d new packages: at most %d each", len(r.Updates), len(r.New), MaxScanUpdates)
	}
	if len(r.RebootPackages) > 1024 {
		return bad("%d reboot packages: at most 1024", len(r.RebootPackages))
	}
	short := func(what, s string) error {
		if len(s) > maxScanField || !utf8.ValidString(s) {
			return bad("%s %q: at most %d bytes of UTF-8", what, Tail([]byte(s), 64), maxScanField)
		}
		return nil
	}
	for _, f := range []struct{ what, s string }{
		{"os id", r.OS.ID}, {"os version", r.OS.VersionID}, {"os codename", r.OS.Codename},
		{"os name", r.OS.PrettyName}, {"kernel", r.Kernel},
	} {
		if err := short(f.what, f.s); err != nil {
			return err
		}
	}
	for _, p := range r.RebootPackages {
		if err := short("reboot package", p); err != nil {
			return err
		}
	}
	for _, list := range [][]Package{r.Installed, r.Broken, r.New} {
		for _, p := range list {
			if p.Name == "" {
				return bad("a package without a name")
			}
			for _, s := range []string{p.Name, p.Version, p.Arch, p.Status} {
				if err := short("package field", s); err != nil {
					return err
				}
			}
		}
	}
	for _, u := range r.Updates {
		if u.Name == "" || u.Candidate == "" {
			return bad("update %q: name and candidate version are required", u.Name)
		}
		if len(u.Suites) > 16 {
			return bad("update %s: %d suites, at most 16", u.Name, len(u.Suites))
		}
		for _, s := range append([]string{u.Name, u.Arch, u.Installed, u.Candidate}, u.Suites...) {
			if err := short("update field", s); err != nil {
				return err
			}
		}
	}
	if len(r.Error) > 4096 || !utf8.ValidString(r.Error) {
		return bad("error: %d bytes, want at most 4096 of UTF-8", len(r.Error))
	}
	return nil
}

// Encode validates r and returns its canonical encoding.
func (r *ScanReport) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b, err := encodeCanonical(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadScan, err)
	}
	if len(b) > MaxScanBytes {
		return nil, fmt.Errorf("%w: %d bytes encoded, at most %d", ErrBadScan, len(b), MaxScanBytes)
	}
	return b, nil
}

// DecodeScan parses and validates a canonical scan report encoding.
func DecodeScan(data []byte) (*ScanReport, error) {
	if len(data) > MaxScanBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadScan, len(data), MaxScanBytes)
	}
	var r ScanReport
	if err := decodeCanonical(data, &r, "scan report"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadScan, err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// SignScan encodes and signs a scan report with the node's key.
func SignScan(r *ScanReport, priv ed25519.PrivateKey) (*Envelope, error) {
	b, err := r.Encode()
	if err != nil {
		return nil, err
	}
	return Seal(TypeScan, b, priv), nil
}

// OpenScan checks a scan envelope against the node's public key, decodes
// it and checks that the report names that node (nodeID).
func OpenScan(e *Envelope, nodeID string, pub ed25519.PublicKey) (*ScanReport, error) {
	b, err := e.Open(TypeScan, pub)
	if err != nil {
		return nil, err
	}
	r, err := DecodeScan(b)
	if err != nil {
		return nil, err
	}
	if r.NodeID != nodeID {
		return nil, fmt.Errorf("%w: scan report names node %s, signed by %s", ErrBadSignature, r.NodeID, nodeID)
	}
	return r, nil
}
