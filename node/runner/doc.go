// Package runner runs one deployment order's installs on a node (DESIGN.md,
// flow step 5): for every package of the order it reassembles the archive
// from the node's fragment store, checks it against the verified manifest,
// unpacks it through install.Extract, runs the package's command through
// install.Run and turns what happened into an OCS status code (core.State).
//
// Decisions a reader would otherwise have to dig out of the code:
//
//   - A command's exit code is SUCCESS only when it is one of the package's
//     success codes (Manifest.SuccessCodes; 0 when none are declared) or a
//     Windows "reboot required" code, 3010 or 1641. Any other code is
//     ERR_EXECUTE with the code in ExitCode and the success codes in
//     Detail: a command that exits 3 failed. Only SUCCESS marks the package
//     in Installed and lets a bulk order go on; a failed package stays
//     unmarked, so a later order may try again.
//   - ERR_ALREADY_SETUP does not stop a bulk order: the package is on the
//     node, which is what the order wants. Request.Force (the order's
//     force) installs it again instead.
//   - onStart is called only for packages whose install really begins, not
//     for ones refused before (already installed, order aborted or out of
//     time). onResult may be called twice for a package of a bulk order that
//     was rolled back; the last result for a package wins, and Install
//     returns the last ones.
//   - A bulk rollback runs each package's Uninstall in the same kind of
//     directory its install ran in (the archive is reassembled and extracted
//     again, so an uninstall script shipped in the archive is there; store
//     packages run in StorePath). Only a successful uninstall unmarks the
//     package. A package without Uninstall, or whose uninstall failed, stays
//     installed and marked; its state is ERR_ABORTED all the same and the
//     Detail says so.
//   - The order's Timeout is one budget for all its packages: each command
//     gets what is left of it, and it also bounds reassembly and extraction.
//     Without it each command gets the manifest's TimeoutSec, else
//     Config.DefaultTimeout. Uninstall and reboot commands are not charged to
//     the order's budget.
//   - RebootIfNeeded reboots when any install or uninstall command of the
//     order exited 3010 (ERROR_SUCCESS_REBOOT_REQUIRED) or 1641
//     (ERROR_SUCCESS_REBOOT_INITIATED), the Windows installer's codes, or
//     when Config.RebootRequiredFile exists afterwards (Linux: Debian and
//     Ubuntu packages create /var/run/reboot-required). Unix exit statuses
//     are 0-255, so the codes cannot occur there.
//   - One Runner runs one order at a time: a second Install waits for the
//     first (two installers at once is how package managers' locks break).
package runner

import "errors"

// Sentinel errors, checked with errors.Is. They end up, wrapped with the
// details, in Result.Detail.
var (
	// ErrConfig: a Config field is invalid.
	ErrConfig = errors.New("runner: invalid config")
	// ErrRequest: a Request is invalid (unknown mode or reboot policy,
	// negative timeout, package without manifest).
	ErrRequest = errors.New("runner: invalid request")
	// ErrBuild: the archive cannot be reassembled (missing fragment, read
	// or write error). Reported as ERR_BUILD.
	ErrBuild = errors.New("runner: cannot reassemble archive")
	// ErrDigest: the reassembled archive or one of its fragments does not
	// match the manifest. Reported as ERR_BAD_DIGEST.
	ErrDigest = errors.New("runner: archive does not match manifest")
	// ErrUnpack: the archive cannot be unpacked. Reported as
	// ERR_DOWNLOAD_PACK.
	ErrUnpack = errors.New("runner: cannot unpack archive")
)
