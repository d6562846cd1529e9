package core

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// State is one node's state for one order (and package).
type State string

// The states of DESIGN.md, Status codes.
const (
	StateWaiting     State = "WAITING_NOTIFICATION"
	StateNotified    State = "NOTIFIED"
	StateDownloading State = "DOWNLOADING"
	StateDownloaded  State = "DOWNLOADED"
	StateInstalling  State = "INSTALLING"
	StateSuccess     State = "SUCCESS"
	StateCancelled   State = "CANCELLED"

	ErrAlreadySetup = State("ERR_ALREADY_SETUP")
	ErrBadID        = State("ERR_BAD_ID")
	ErrBadDigestSt  = State("ERR_BAD_DIGEST")
	ErrDownloadPack = State("ERR_DOWNLOAD_PACK")
	ErrBuild        = State("ERR_BUILD")
	ErrExecute      = State("ERR_EXECUTE")
	ErrClean        = State("ERR_CLEAN")
	ErrTimeout      = State("ERR_TIMEOUT")
	ErrAborted      = State("ERR_ABORTED")
	ErrBadSigSt     = State("ERR_BAD_SIGNATURE")
	ErrExpiredSt    = State("ERR_EXPIRED")
	ErrReplaySt     = State("ERR_REPLAY")
	// ErrDowngrade: the package is older than the version of the same
	// name installed on the node, and the order does not allow a downgrade.
	ErrDowngrade = State("ERR_DOWNGRADE")
)

var allStates = map[State]bool{
	StateWaiting: true, StateNotified: true, StateDownloading: true, StateDownloaded: true,
	StateInstalling: true, StateSuccess: true, StateCancelled: true,
	ErrAlreadySetup: true, ErrBadID: true, ErrBadDigestSt: true, ErrDownloadPack: true,
	ErrBuild: true, ErrExecute: true, ErrClean: true, ErrTimeout: true, ErrAborted: true,
	ErrBadSigSt: true, ErrExpiredSt: true, ErrReplaySt: true, ErrDowngrade: true,
}

// Valid reports whether s is a known state.
func (s State) Valid() bool { return allStates[s] }

// Final reports whether a node in state s is done with the order.
func (s State) Final() bool {
	switch s {
	case StateWaiting, StateNotified, StateDownloading, StateDownloaded, StateInstalling:
		return false
	}
	return true
}

// Installed reports whether a node in state s has the package, which is
// what the order asked for: SUCCESS, or ERR_ALREADY_SETUP (installed by
// an earlier order). Statistics count both as success, not as errors.
func (s State) Installed() bool { return s == StateSuccess || s == ErrAlreadySetup }

// IsError reports whether s is one of the ERR_ states.
func (s State) IsError() bool { return len(s) > 4 && s[:4] == "ERR_" }

// StatusSchema is the status report format version.
const StatusSchema = 1

// MaxOutputTail caps the output tail carried in a report.
const MaxOutputTail = 64 << 10

// Status is one node's report for one order, signed by the node's key.
// Seq increases by one with every report a node makes, over all orders.
type Status struct {
	Schema       int       `json:"schema"`
	NodeID       string    `json:"node"`
	OrderID      string    `json:"order"`
	Package      string    `json:"package,omitempty"`
	Seq          uint64    `json:"seq"`
	State        State     `json:"state"`
	ExitCode     int       `json:"exit_code"`
	Time         time.Time `json:"time"`
	BytesFetched int64     `json:"bytes_fetched,omitempty"`
	Output       string    `json:"output,omitempty"`
	Detail       string    `json:"detail,omitempty"`
}

// Validate checks the report's fields.
func (s *Status) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadStatus, fmt.Sprintf(format, a...))
	}
	if s.Schema != StatusSchema {
		return bad("schema %d: want %d", s.Schema, StatusSchema)
	}
	if s.NodeID == "" || len(s.NodeID) > 128 || !utf8.ValidString(s.NodeID) {
		return bad("node %q: not a node ID (1-128 bytes of UTF-8)", s.NodeID)
	}
	if !orderIDRe.MatchString(s.OrderID) {
		return bad("order %q: not an order ID", s.OrderID)
	}
	if s.Package != "" {
		if _, err := ParseCID(s.Package); err != nil {
			return bad("package: %v", err)
		}
	}
	if s.Seq == 0 {
		return bad("sequence 0: must be positive")
	}
	if !s.State.Valid() {
		return bad("state %q: unknown", s.State)
	}
	if s.Time.IsZero() || s.Time.Location() != time.UTC {
		return bad("time %v: want a UTC time", s.Time)
	}
	if s.BytesFetched < 0 {
		return bad("bytes fetched %d: negative", s.BytesFetched)
	}
	if len(s.Output) > MaxOutputTail || !utf8.ValidString(s.Output) {
		return bad("output: %d bytes, want at most %d of UTF-8", len(s.Output), MaxOutputTail)
	}
	if len(s.Detail) > 4096 || !utf8.ValidString(s.Detail) {
		return bad("detail: %d bytes, want at most 4096 of UTF-8", len(s.Detail))
	}
	return nil
}

// Encode validates s and returns its canonical encoding.
func (s *Status) Encode() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b, err := encodeCanonical(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadStatus, err)
	}
	return b, nil
}

// DecodeStatus parses and validates a canonical status encoding.
func DecodeStatus(data []byte) (*Status, error) {
	var s Status
	if err := decodeCanonical(data, &s, "status"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadStatus, err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Tail returns the last max bytes of b as valid UTF-8 (invalid sequences
// replaced), for the Output field.
func Tail(b []byte, max int) string {
	if len(b) > max {
		b = b[len(b)-max:]
	}
	s := string(b)
	if !utf8.ValidString(s) {
		s = stringsToValidUTF8(s)
	}
	for len(s) > max { // replacement runes can grow it
		_, n := utf8.DecodeRuneInString(s)
		s = s[n:]
	}
	return s
}

func stringsToValidUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
