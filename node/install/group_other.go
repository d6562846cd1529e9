//go:build !linux

package install

import (
	"os"
	"os/exec"
)

// ownGroup is a no-op off Linux: only the process itself is killed there.
func ownGroup(*exec.Cmd) {}

func killGroup(p *os.Process) error { return p.Kill() }
