// Package core holds the domain types both the coordinator and the node use:
// content identifiers, the streaming chunker, package manifests, signed
// deployment orders and status reports, and the trust checks over them.
package core

import "errors"

var (
	ErrBadCID         = errors.New("core: CID not accepted")
	ErrDigestMismatch = errors.New("core: bytes do not match CID")
	ErrFragmentSize   = errors.New("core: fragment size out of range")
	ErrEmptyArchive   = errors.New("core: archive is empty")
	ErrBadManifest    = errors.New("core: invalid manifest")
	ErrBadOrder       = errors.New("core: invalid order")
	ErrBadStatus      = errors.New("core: invalid status report")
	ErrBadEnvelope    = errors.New("core: malformed signed envelope")
	ErrWrongType      = errors.New("core: envelope holds another payload type")
	ErrBadSignature   = errors.New("core: bad signature")
	ErrUnknownKey     = errors.New("core: unknown signing key")
	ErrExpired        = errors.New("core: order expired")
	ErrNotYetValid    = errors.New("core: order not yet valid")
	ErrReplay         = errors.New("core: replayed order (sequence already accepted or older than the replay window)")
	ErrNotAddressed   = errors.New("core: order not addressed to this node")
	ErrKeyPermissions = errors.New("core: key file readable by group or others")
	ErrBadKeyFile     = errors.New("core: bad key file")
	ErrNotCanonical   = errors.New("core: encoding is not canonical")
	ErrBadWindow      = errors.New("core: invalid maintenance window")
	ErrBadReceipt     = errors.New("core: invalid status receipt")
	ErrBadScan        = errors.New("core: invalid scan report")
	ErrBadMemberList  = errors.New("core: invalid member list")
)
