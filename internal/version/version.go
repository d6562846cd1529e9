// Package version is the version of this relaymesh build, the one
// `relaymesh --version` prints and nodes report to the coordinator.
//
// A release build stamps it with
//
//	go build -ldflags "-X github.com/relaymesh/relaymesh/internal/version.stamp=v1.2.3"
//
// (make build does, from git describe). Without a stamp it comes from the
// build information the go command embeds: the module version of a
// `go install ...@v1.2.3`, else the VCS revision, else "dev".
package version

import (
	"runtime/debug"
	"sync"
)

// stamp is set by the linker (-X); empty when not stamped.
var stamp string

var cached = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	return resolve(stamp, bi, ok)
})

// String is the version of this build.
func String() string { return cached() }

// resolve picks the version from a linker stamp and the embedded build
// information.
func resolve(stamp string, bi *debug.BuildInfo, ok bool) string {
	if stamp != "" {
		return stamp
	}
	if !ok || bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	v := "dev+" + rev[:min(12, len(rev))]
	if dirty {
		v += "-dirty"
	}
	return v
}
