// Package coordinator is the admin's server: it enrolls nodes, stores
// packages, signs deployment orders, takes in status reports, keeps the
// deployments' statistics and seeds fragments to the mesh.
package coordinator

import "errors"

var (
	ErrNotFound       = errors.New("coordinator: not found")
	ErrBadRequest     = errors.New("coordinator: bad request")
	ErrConflict       = errors.New("coordinator: conflict")
	ErrNoTargets      = errors.New("coordinator: targets match no node")
	ErrBadToken       = errors.New("coordinator: join token refused")
	ErrNotEnrolled    = errors.New("coordinator: peer is not enrolled")
	ErrBadConfig      = errors.New("coordinator: invalid config")
	ErrNotInitialised = errors.New("coordinator: directory not initialised")
	ErrRevoked        = errors.New("coordinator: node revoked")
	ErrUnreachable    = errors.New("coordinator: node unreachable") // no stream to it could be opened
	ErrBadSnapshot    = errors.New("coordinator: bad snapshot")     // not a complete relaymesh snapshot
)
