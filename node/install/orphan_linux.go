//go:build linux

package install

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// StartTime is when process pid started, in clock ticks since boot
// (field 22 of /proc/PID/stat). With the PID it names one process for
// good: a PID reused after a crash has another start time.
func StartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm (field 2) is in parentheses and may hold blanks: count from the
	// last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("install: /proc/%d/stat: no ')' in %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	const startField = 22 - 3 // fields after comm start at 3 (state)
	if len(f) <= startField {
		return 0, fmt.Errorf("install: /proc/%d/stat: %d fields after comm", pid, len(f))
	}
	return strconv.ParseUint(f[startField], 10, 64)
}

// GroupRunning reports whether the process group led by pgid, which
// started at start (StartTime), still has its leader, or any member, alive.
// A leader with another start time is a reused PID: the group is gone.
func GroupRunning(pgid int, start uint64) bool {
	if got, err := StartTime(pgid); err == nil {
		return got == start
	}
	// The leader is gone; members may live on in its group (the group ID
	// stays reserved while any member lives, so it cannot be reused).
	return syscall.Kill(-pgid, 0) == nil
}

// KillGroup sends SIGKILL to process group pgid if it is still the one
// that started at start. It reports whether it sent it.
func KillGroup(pgid int, start uint64) (bool, error) {
	if !GroupRunning(pgid, start) {
		return false, nil
	}
	err := syscall.Kill(-pgid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return false, nil
	}
	return err == nil, err
}
