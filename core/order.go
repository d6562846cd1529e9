package core

import (
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode/utf8"
)

// OrderSchema is the order format version.
const OrderSchema = 1

// Order kinds.
const (
	KindDeploy = "deploy"
	KindCancel = "cancel"
)

// InstallMode says how several packages of one order are installed.
type InstallMode string

const (
	ModeOneByOne InstallMode = "one-by-one" // a failure does not stop the rest
	ModeBulk     InstallMode = "bulk"       // the first failure stops and rolls back
)

// RebootPolicy says whether a node reboots after the order's installs.
type RebootPolicy string

const (
	RebootNever    RebootPolicy = "never"
	RebootIfNeeded RebootPolicy = "if-needed"
	RebootAlways   RebootPolicy = "always"
)

// MaxOrderTargets caps the targets of one order.
const MaxOrderTargets = 100_000

// Order is a deployment order (or a cancel order), signed by the coordinator.
// Times are UTC with second precision.
type Order struct {
	Schema    int          `json:"schema"`
	Kind      string       `json:"kind"`
	ID        string       `json:"id"`
	KeyID     string       `json:"key_id"`
	Seq       uint64       `json:"seq"`
	IssuedAt  time.Time    `json:"issued_at"`
	NotBefore time.Time    `json:"not_before"`
	Expires   time.Time    `json:"expires"`
	Packages  []string     `json:"packages,omitempty"`
	Targets   []string     `json:"targets"`
	Priority  int          `json:"priority"`
	Mode      InstallMode  `json:"mode,omitempty"`
	Reboot    RebootPolicy `json:"reboot,omitempty"`
	Timeout   int64        `json:"timeout_s,omitempty"`
	Window    string       `json:"window,omitempty"`
	Prefetch  bool         `json:"prefetch,omitempty"`
	Cancels   string       `json:"cancels,omitempty"`
	// AllowDowngrade lets the order install a package over a newer
	// version of the same name; without it the node refuses with
	// ERR_DOWNGRADE. Last, and omitted when false, so orders without it
	// encode as before.
	AllowDowngrade bool `json:"allow_downgrade,omitempty"`
	// Force installs the packages again on nodes that installed them
	// before (otherwise they answer ERR_ALREADY_SETUP). Omitted when
	// false, so orders without it encode as before.
	Force bool `json:"force,omitempty"`
	// Uninstall runs the packages' uninstall commands instead of
	// installing them (deploy uninstall). Omitted when false, so orders
	// without it encode as before.
	Uninstall bool `json:"uninstall,omitempty"`
	// GossipKeys, in a gossip-key order, are the fingerprints
	// (GossipKeyID) of the keyring the targets must hold, primary first.
	GossipKeys []string `json:"gossip_keys,omitempty"`
}

var orderIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Validate checks the order's fields.
func (o *Order) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadOrder, fmt.Sprintf(format, a...))
	}
	if o.Schema != OrderSchema {
		return bad("schema %d: want %d", o.Schema, OrderSchema)
	}
	if !orderIDRe.MatchString(o.ID) {
		return bad("id %q: use 1-64 letters, digits, '_' or '-'", o.ID)
	}
	if len(o.KeyID) != 64 {
		return bad("key id %q: want 64 hex digits", o.KeyID)
	}
	if o.Seq == 0 {
		return bad("sequence 0: must be positive")
	}
	for name, t := range map[string]time.Time{"issued_at": o.IssuedAt, "not_before": o.NotBefore, "expires": o.Expires} {
		if t.IsZero() || t.Location() != time.UTC || t.Nanosecond() != 0 {
			return bad("%s %v: want a UTC time in whole seconds", name, t)
		}
	}
	if !o.Expires.After(o.NotBefore) {
		return bad("expires %s is not after not_before %s", o.Expires.Format(time.RFC3339), o.NotBefore.Format(time.RFC3339))
	}
	if len(o.Targets) == 0 || len(o.Targets) > MaxOrderTargets {
		return bad("%d targets: want 1 to %d", len(o.Targets), MaxOrderTargets)
	}
	if !slices.IsSorted(o.Targets) || len(slices.Compact(slices.Clone(o.Targets))) != len(o.Targets) {
		return bad("targets must be sorted and unique")
	}
	for _, t := range o.Targets {
		if t == "" || len(t) > 128 || !utf8.ValidString(t) {
			return bad("target %q: not a node ID (1-128 bytes of UTF-8)", t)
		}
	}
	if o.Priority < 0 || o.Priority > 10 {
		return bad("priority %d: must be between 0 and 10", o.Priority)
	}
	if o.Kind != KindGossipKey && len(o.GossipKeys) > 0 {
		return bad("a %s order names no gossip keys", o.Kind)
	}
	switch o.Kind {
	case KindDeploy:
		if len(o.Packages) == 0 || len(o.Packages) > 64 {
			return bad("%d packages: want 1 to 64", len(o.Packages))
		}
		for i, p := range o.Packages {
			if _, err := ParseCID(p); err != nil {
				return bad("package %d: %v", i, err)
			}
		}
		if o.Mode != ModeOneByOne && o.Mode != ModeBulk {
			return bad("install mode %q: want one-by-one or bulk", o.Mode)
		}
		switch o.Reboot {
		case RebootNever, RebootIfNeeded, RebootAlways:
		default:
			return bad("reboot policy %q: want never, if-needed or always", o.Reboot)
		}
		if o.Timeout < 0 {
			return bad("timeout %ds: must not be negative", o.Timeout)
		}
		if _, err := ParseWindow(o.Window); err != nil {
			return bad("%v", err)
		}
		if o.Cancels != "" {
			return bad("a deploy order cancels nothing")
		}
	case KindCancel:
		if !orderIDRe.MatchString(o.Cancels) {
			return bad("cancel order names no valid order to cancel (%q)", o.Cancels)
		}
		if len(o.Packages) != 0 || o.Mode != "" || o.Reboot != "" || o.Window != "" || o.Timeout != 0 || o.Prefetch || o.AllowDowngrade || o.Force || o.Uninstall {
			return bad("a cancel order carries only targets and the order it cancels")
		}
	case KindScan:
		if len(o.Packages) != 0 || o.Mode != "" || o.Reboot != "" || o.Window != "" || o.Timeout != 0 || o.Prefetch || o.Cancels != "" || o.Uninstall {
			return bad("a scan order carries only targets")
		}
	case KindGossipKey:
		if len(o.Packages) != 0 || o.Mode != "" || o.Reboot != "" || o.Window != "" || o.Timeout != 0 || o.Prefetch || o.Cancels != "" || o.AllowDowngrade || o.Force || o.Uninstall {
			return bad("a gossip-key order carries only targets and gossip key fingerprints")
		}
		if err := validGossipKeyIDs(o.GossipKeys); err != nil {
			return bad("%v", err)
		}
	default:
		return bad("kind %q: want deploy, cancel, scan or gossip-key", o.Kind)
	}
	return nil
}

// Addressed reports whether node is among the order's targets.
func (o *Order) Addressed(node string) bool {
	_, ok := slices.BinarySearch(o.Targets, node)
	return ok
}

// Encode validates o and returns its canonical encoding.
func (o *Order) Encode() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	b, err := encodeCanonical(o)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOrder, err)
	}
	return b, nil
}

// DecodeOrder parses and validates a canonical order encoding.
func DecodeOrder(data []byte) (*Order, error) {
	var o Order
	if err := decodeCanonical(data, &o, "order"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOrder, err)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}
