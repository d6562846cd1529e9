//go:build linux

package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/relaymesh/relaymesh/internal/poll"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var seq bytes.Buffer
	for i := 1; i <= 5000; i++ {
		fmt.Fprintln(&seq, i)
	}
	cases := []struct {
		name     string
		spec     Spec
		wantCode int
		wantOut  string
		wantErr  error
	}{
		{name: "exit 0", spec: Spec{Argv: []string{"true"}}, wantCode: 0},
		{name: "exit 3", spec: Spec{Argv: []string{"sh", "-c", "exit 3"}}, wantCode: 3},
		{name: "stdout and stderr combined", spec: Spec{Argv: []string{"sh", "-c", "echo out; echo err >&2"}}, wantCode: 0, wantOut: "out\nerr\n"},
		{name: "argv not through a shell", spec: Spec{Argv: []string{"echo", "$HOME;", "`id`"}}, wantCode: 0, wantOut: "$HOME; `id`\n"},
		{name: "tail keeps the last bytes", spec: Spec{Argv: []string{"seq", "1", "5000"}, TailBytes: 100}, wantCode: 0, wantOut: string(seq.Bytes()[seq.Len()-100:])},
		{name: "env replaces", spec: Spec{Argv: []string{"sh", "-c", `echo "$RELAYMESH_X:$HOME"`}, Env: []string{"RELAYMESH_X=1"}}, wantCode: 0, wantOut: "1:\n"},
		{name: "dir", spec: Spec{Argv: []string{"pwd"}, Dir: dir}, wantCode: 0, wantOut: dir + "\n"},
		{name: "killed by own signal", spec: Spec{Argv: []string{"sh", "-c", "kill -9 $$"}}, wantCode: -1},
		{name: "missing binary in PATH", spec: Spec{Argv: []string{"relaymesh-no-such-binary"}}, wantCode: -1, wantErr: exec.ErrNotFound},
		{name: "missing binary by path", spec: Spec{Argv: []string{"/nonexistent/relaymesh"}}, wantCode: -1, wantErr: ErrStart},
		{name: "missing dir", spec: Spec{Argv: []string{"true"}, Dir: filepath.Join(dir, "nope")}, wantCode: -1, wantErr: ErrStart},
		{name: "empty argv", spec: Spec{}, wantCode: -1, wantErr: ErrStart},
		{name: "negative timeout", spec: Spec{Argv: []string{"true"}, Timeout: -time.Second}, wantCode: -1, wantErr: ErrStart},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := Run(t.Context(), tc.spec)
			if res.ExitCode != tc.wantCode {
				t.Errorf("ExitCode = %d, want %d (output %q, err %v)", res.ExitCode, tc.wantCode, res.Output, res.Err)
			}
			if tc.wantErr == nil && res.Err != nil || tc.wantErr != nil && !errors.Is(res.Err, tc.wantErr) {
				t.Errorf("Err = %v, want %v", res.Err, tc.wantErr)
			}
			if tc.wantErr != nil && !errors.Is(res.Err, ErrStart) {
				t.Errorf("Err = %v, want it to wrap ErrStart", res.Err)
			}
			if tc.wantOut != "" && string(res.Output) != tc.wantOut {
				t.Errorf("Output = %q, want %q", res.Output, tc.wantOut)
			}
			if res.TimedOut || res.Cancelled {
				t.Errorf("TimedOut %v, Cancelled %v; want neither", res.TimedOut, res.Cancelled)
			}
			if res.Duration <= 0 {
				t.Errorf("Duration = %v", res.Duration)
			}
		})
	}
}

// groupScript starts a background grandchild, records its pid, and waits.
func groupScript(pidFile string) []string {
	return []string{"sh", "-c", `sleep 30 & echo $! > "$1"; echo started; sleep 30`, "sh", pidFile}
}

// readPid polls until the script has written the grandchild's pid.
func readPid(t *testing.T, pidFile string) int {
	t.Helper()
	var b []byte
	poll.Until(t, 10*time.Second, 5*time.Millisecond, "pid file "+pidFile, func() (bool, string) {
		var err error
		b, err = os.ReadFile(pidFile)
		return err == nil && bytes.HasSuffix(b, []byte("\n")), fmt.Sprint(err)
	})
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// waitDead polls until pid is gone. A zombie counts as dead: the grandchild
// was reparented, and reaping it is its new parent's job.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	poll.Until(t, 10*time.Second, 5*time.Millisecond, fmt.Sprintf("grandchild %d to die", pid), func() (bool, string) {
		err := syscall.Kill(pid, 0)
		return errors.Is(err, syscall.ESRCH) || isZombie(pid), fmt.Sprintf("kill 0: %v", err)
	})
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may hold spaces, so look after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestRunTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	res := Run(t.Context(), Spec{Argv: groupScript(pidFile), Timeout: time.Second})
	if !res.TimedOut || res.Cancelled || res.ExitCode != -1 || res.Err != nil {
		t.Fatalf("Result = %+v, want TimedOut, ExitCode -1", res)
	}
	if res.Duration > 10*time.Second {
		t.Errorf("Run took %v after a 1s timeout", res.Duration)
	}
	if string(res.Output) != "started\n" {
		t.Errorf("Output = %q", res.Output)
	}
	waitDead(t, readPid(t, pidFile))
}

func TestRunCancelKillsGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan Result, 1)
	go func() { done <- Run(ctx, Spec{Argv: groupScript(pidFile), Timeout: time.Minute}) }()
	pid := readPid(t, pidFile)
	cancel()
	res := <-done
	if !res.Cancelled || res.TimedOut || res.ExitCode != -1 {
		t.Fatalf("Result = %+v, want Cancelled, ExitCode -1", res)
	}
	waitDead(t, pid)
}

func TestRunAlreadyCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res := Run(ctx, Spec{Argv: []string{"true"}})
	if !res.Cancelled || res.ExitCode != -1 || !errors.Is(res.Err, ErrStart) {
		t.Fatalf("Result = %+v, want Cancelled, not started", res)
	}
}

// A child that leaves the group and keeps stdout open must not hang Run.
func TestRunEscapedHolderDoesNotHang(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	pidFile := filepath.Join(t.TempDir(), "pid")
	res := Run(t.Context(), Spec{Argv: []string{"sh", "-c", `setsid sleep 30 & echo $! > "$1"; exit 0`, "sh", pidFile}})
	pid := readPid(t, pidFile)
	defer syscall.Kill(pid, syscall.SIGKILL)
	if res.ExitCode != 0 || res.Err != nil {
		t.Fatalf("Result = %+v, want exit 0", res)
	}
	if res.Duration > waitDelay+10*time.Second {
		t.Errorf("Run took %v", res.Duration)
	}
}
