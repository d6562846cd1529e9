package version

import (
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}
	}
	for _, tc := range []struct {
		name  string
		stamp string
		bi    *debug.BuildInfo
		ok    bool
		want  string
	}{
		{"stamp wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, true, "v1.2.3"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, true, "v0.9.0"},
		{"vcs revision", "", vcs("0123456789abcdef0123", "false"), true, "dev+0123456789ab"},
		{"vcs revision, modified tree", "", vcs("0123456789abcdef0123", "true"), true, "dev+0123456789ab-dirty"},
		{"short revision", "", vcs("abc", "false"), true, "dev+abc"},
		{"devel without vcs (-buildvcs=false)", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"no build info", "", nil, false, "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := resolve(tc.stamp, tc.bi, tc.ok); got != tc.want {
				t.Errorf("resolve = %q, want %q", got, tc.want)
			}
		})
	}
}

// The linker stamp reaches `relaymesh --version`.
func TestStampReachesBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "relaymesh")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/relaymesh/relaymesh/internal/version.stamp=v9.8.7-test", "github.com/relaymesh/relaymesh")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "relaymesh v9.8.7-test" {
		t.Errorf("--version printed %q, want relaymesh v9.8.7-test", got)
	}
}
