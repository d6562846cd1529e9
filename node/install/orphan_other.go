//go:build !linux

package install

import "errors"

var errNoProc = errors.New("install: process start times need Linux")

// StartTime needs /proc: off Linux it fails.
func StartTime(int) (uint64, error) { return 0, errNoProc }

// GroupRunning cannot tell off Linux: it reports false.
func GroupRunning(int, uint64) bool { return false }

// KillGroup does nothing off Linux.
func KillGroup(int, uint64) (bool, error) { return false, nil }
