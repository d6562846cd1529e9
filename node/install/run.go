package install

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync/atomic"
	"time"
)

// waitDelay bounds how long Run waits for the output pipes to close once the
// command has exited or been killed: a process that left the group (setsid)
// and kept stdout open must not hang the installer.
const waitDelay = 2 * time.Second

// Spec says what Run runs.
type Spec struct {
	// Argv is the program and its arguments, executed directly, never
	// through a shell. Argv[0] is looked up in PATH when it has no slash.
	Argv []string
	// Dir is the working directory; empty means the node's.
	Dir string
	// Env is the environment; nil means the node's own.
	Env []string
	// Timeout bounds the run; zero means only ctx does.
	Timeout time.Duration
	// TailBytes is how much of the combined stdout and stderr to keep, the
	// last bytes; zero means DefaultTailBytes.
	TailBytes int
	// Started, when set, is called once the program runs, with its PID
	// (also its process group ID), before Run waits for it: the caller
	// records it durably, so that after a crash it can find the group.
	// When Started fails, the group is killed and Run returns its error.
	Started func(pgid int) error
}

// Result is what came of a Run.
type Result struct {
	// ExitCode is the program's exit status, or -1 when it did not start,
	// was killed (timeout, cancel) or died of a signal.
	ExitCode int
	// Output is the tail of the combined stdout and stderr.
	Output []byte
	// TimedOut: Spec.Timeout passed and the process group was killed.
	TimedOut bool
	// Cancelled: ctx ended and the process group was killed.
	Cancelled bool
	// Err is set when the program could not start (wrapping ErrStart) or
	// could not be waited for; a non-zero exit is not an error here.
	Err error
	// Duration is the wall time Run took.
	Duration time.Duration
}

// Run executes spec.Argv in its own process group, with stdin from
// /dev/null. When spec.Timeout passes or ctx ends, the whole group is killed
// with SIGKILL, so children the program started in the background die too.
// Run returns once the program has been reaped.
func Run(ctx context.Context, spec Spec) (res Result) {
	start := time.Now()
	res.ExitCode = -1
	defer func() { res.Duration = time.Since(start) }()

	switch {
	case len(spec.Argv) == 0 || spec.Argv[0] == "":
		res.Err = fmt.Errorf("%w: empty Argv", ErrStart)
		return res
	case spec.Timeout < 0:
		res.Err = fmt.Errorf("%w: Timeout %v: must not be negative", ErrStart, spec.Timeout)
		return res
	}
	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if spec.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, spec.Timeout)
	}
	defer cancel()

	tail := NewTail(spec.TailBytes)
	cmd := exec.CommandContext(runCtx, spec.Argv[0], spec.Argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	cmd.Stdout = tail // the same writer for both: one pipe, one copier
	cmd.Stderr = tail
	ownGroup(cmd)
	var killed atomic.Bool
	cmd.Cancel = func() error {
		killed.Store(true)
		return killGroup(cmd.Process)
	}
	cmd.WaitDelay = waitDelay

	if err := cmd.Start(); err != nil {
		res.Err = fmt.Errorf("%w: %q: %w", ErrStart, spec.Argv[0], err)
		res.markEnded(ctx, runCtx)
		return res
	}
	if spec.Started != nil {
		if serr := spec.Started(cmd.Process.Pid); serr != nil {
			killed.Store(true)
			_ = killGroup(cmd.Process)
			_ = cmd.Wait()
			res.Output = tail.Bytes()
			res.Err = fmt.Errorf("%w: %q: cannot record the started process: %w", ErrStart, spec.Argv[0], serr)
			return res
		}
	}
	err := cmd.Wait()
	res.Output = tail.Bytes()
	res.ExitCode = cmd.ProcessState.ExitCode()
	if killed.Load() {
		res.ExitCode = -1
		res.markEnded(ctx, runCtx)
		return res
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.As(err, &exitErr):
	case errors.Is(err, exec.ErrWaitDelay):
		// Exited with success, but something it left behind held the
		// output open; the exit code stands.
	default:
		res.Err = fmt.Errorf("install: run %q: %w", spec.Argv[0], err)
	}
	return res
}

// markEnded says why the run was cut short, if it was: the caller's ctx
// (Cancelled) or the timeout (TimedOut).
func (r *Result) markEnded(ctx, runCtx context.Context) {
	switch {
	case ctx.Err() != nil:
		r.Cancelled = true
	case runCtx.Err() != nil:
		r.TimedOut = true
	}
}
