//go:build linux

package install

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestStartedFailureKillsGroup: when the caller cannot record the started
// command, Run kills its group and says why, instead of running a command
// a crash would leave untracked.
func TestStartedFailureKillsGroup(t *testing.T) {
	t.Parallel()
	var pgid int
	boom := errors.New("disk full")
	res := Run(context.Background(), Spec{
		Argv:    []string{"sleep", "600"},
		Timeout: time.Minute,
		Started: func(p int) error { pgid = p; return boom },
	})
	if !errors.Is(res.Err, boom) || !errors.Is(res.Err, ErrStart) {
		t.Fatalf("Err = %v, want ErrStart wrapping %v", res.Err, boom)
	}
	if res.ExitCode != -1 {
		t.Errorf("ExitCode = %d, want -1", res.ExitCode)
	}
	if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("group %d after Run: kill 0 = %v, want ESRCH", pgid, err)
	}
}

// TestGroupRunningChecksStartTime: a live group is found by PID and start
// time; the same PID with another start time (a reused PID) is not it.
func TestGroupRunningChecksStartTime(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	start, err := StartTime(pgid)
	if err != nil || start == 0 {
		t.Fatalf("StartTime(%d) = %d, %v", pgid, start, err)
	}
	if GroupRunning(pgid, start+1) {
		t.Error("group with another start time (a reused PID) counted as running")
	}
	if killed, err := KillGroup(pgid, start+1); killed || err != nil {
		t.Errorf("KillGroup with another start time = %v, %v: want it left alone", killed, err)
	}
	if !GroupRunning(pgid, start) {
		t.Fatal("running group not found")
	}
	if killed, err := KillGroup(pgid, start); !killed || err != nil {
		t.Fatalf("KillGroup = %v, %v", killed, err)
	}
	_ = cmd.Wait()
	if GroupRunning(pgid, start) {
		t.Error("group still running after KillGroup and reaping")
	}
}
