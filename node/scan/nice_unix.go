//go:build unix

package scan

import "syscall"

// scanNice is the niceness apt runs at: a scan is background work and
// gives way to installs and transfers.
const scanNice = 10

// lowerPriority renices the process pid; a failure only leaves it at the
// node's priority.
func lowerPriority(pid int) { _ = syscall.Setpriority(syscall.PRIO_PROCESS, pid, scanNice) }
