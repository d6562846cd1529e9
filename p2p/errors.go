package p2p

import (
	"errors"
	"fmt"
)

var (
	ErrBadConfig      = errors.New("p2p: invalid config")
	ErrBadIdentity    = errors.New("p2p: bad identity")
	ErrKeyPermissions = errors.New("p2p: identity file readable by group or others")
	ErrNotEd25519     = errors.New("p2p: key is not ed25519")
	ErrBadAddr        = errors.New("p2p: bad peer address")
	ErrMsgTooLarge    = errors.New("p2p: message too large")
	ErrBadMsg         = errors.New("p2p: malformed message")
	ErrNotFound       = errors.New("p2p: fragment not found")
	ErrTooLarge       = errors.New("p2p: fragment larger than allowed")
	ErrTruncated      = errors.New("p2p: fragment stream ended early")
	// ErrTooSlow: the source sent the fragment slower than the floor
	// (WithFloor); ask another source.
	ErrTooSlow = errors.New("p2p: fragment source too slow")
	// ErrNoAnswer: the source did not answer within WithHeaderTimeout.
	ErrNoAnswer = errors.New("p2p: fragment source did not answer")
	// ErrBusy: the peer has the fragment but no upload slot free now; ask
	// another source.
	ErrBusy = errors.New("p2p: peer busy")
)

// RemoteError is the failure a remote handler reported. Its message is the
// remote's text, so never trust it for anything but display and logs.
type RemoteError struct {
	Msg string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("p2p: remote error: %s", e.Msg)
}
