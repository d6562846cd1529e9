package node

import (
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// TestCheckWanted: what the rescan says of the packages apt was to
// install, for the row.
func TestCheckWanted(t *testing.T) {
	t.Parallel()
	inv := &core.Inventory{
		Installed: []core.Package{{Name: "openssl", Version: "1.1"}, {Name: "hello", Version: "1.0"}},
		Updates:   []core.Update{{Name: "hello", Installed: "1.0", Candidate: "1.1", Security: true}},
	}
	want := func(n, v string) runner.AptWant { return runner.AptWant{Name: n, Version: v, Arch: "all"} }
	for _, tt := range []struct {
		name    string
		want    []runner.AptWant
		upgrade bool
		ok, err string
	}{
		{"installed", []runner.AptWant{want("openssl", "1.1")}, false, "rescan: openssl 1.1 installed; 1 updates left (1 security)", ""},
		{"older", []runner.AptWant{want("hello", "1.1")}, false, "", "hello is at 1.0, not 1.1; 1 updates left (1 security)"},
		{"missing", []runner.AptWant{want("libfoo", "2")}, false, "", "libfoo is not installed"},
		{"missing, upgrade only", []runner.AptWant{want("libfoo", "2")}, true, "rescan: none of these packages is installed here, nothing to upgrade", ""},
	} {
		got, err := checkWanted(inv, tt.want, tt.upgrade)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: %q, %v; want error %q", tt.name, got, err, tt.err)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(got, tt.ok) {
			t.Errorf("%s: %q, %v; want %q", tt.name, got, err, tt.ok)
		}
	}
	broken := &core.Inventory{Installed: inv.Installed, Broken: []core.Package{{Name: "grumpy", Version: "1.1", Status: "half-configured"}}}
	if _, err := checkWanted(broken, []runner.AptWant{want("openssl", "1.1")}, false); err == nil || !strings.Contains(err.Error(), "grumpy 1.1 is half-configured") {
		t.Errorf("broken package: %v", err)
	}
}
