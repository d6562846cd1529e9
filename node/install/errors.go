// Package install is the hostile-input-safe half of the node's installer:
// it unpacks package archives into a directory without letting them write
// anywhere else (Extract), runs install commands in their own process group
// with a timeout and an output tail (Run), and removes temporary directories
// (Cleanup).
//
// Archives arrive from peers. Their bytes are verified against the signed
// manifest before they get here, but the manifest is built from whatever the
// admin packaged, so Extract still treats every archive as hostile.
package install

import "errors"

// Sentinel errors. Check them with errors.Is. ErrTooLarge and
// ErrTooManyFiles are also ErrUnsafeArchive.
var (
	// ErrUnsafeArchive: an entry would escape the destination, or is of a
	// kind the installer refuses (device, FIFO, socket, …).
	ErrUnsafeArchive = errors.New("install: unsafe archive")
	// ErrTooLarge: the archive holds more bytes than Limits.MaxBytes.
	ErrTooLarge error = &childError{"install: archive too large", ErrUnsafeArchive}
	// ErrTooManyFiles: the archive holds more entries than Limits.MaxFiles.
	ErrTooManyFiles error = &childError{"install: archive has too many entries", ErrUnsafeArchive}
	// ErrFormat: the archive is neither tar.gz nor zip, or is corrupt.
	ErrFormat = errors.New("install: cannot read archive")
	// ErrStart: the command could not be started.
	ErrStart = errors.New("install: cannot start command")
	// ErrClean: a temporary directory could not be removed.
	ErrClean = errors.New("install: cannot clean up")
)

// childError is a sentinel that is also its parent under errors.Is.
type childError struct {
	msg    string
	parent error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.parent }
