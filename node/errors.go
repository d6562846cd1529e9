package node

import "errors"

// Sentinel errors; check them with errors.Is.
var (
	ErrBadConfig       = errors.New("node: invalid config")
	ErrNotEnrolled     = errors.New("node: not enrolled")
	ErrAlreadyEnrolled = errors.New("node: already enrolled")
	ErrEnrollRefused   = errors.New("node: enrollment refused by the coordinator")
	ErrBadEnrollment   = errors.New("node: bad enrollment data")
	ErrClosed          = errors.New("node: closed")
	ErrUnsignedAck     = errors.New("node: status ack not signed by the coordinator")
)
