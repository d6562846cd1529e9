package cli

import (
	"strings"
	"testing"
)

func TestNodesDeleteRevoke(t *testing.T) {
	t.Parallel()
	tc := startCoord(t)
	tc.enroll("paris", "paris-1")
	tc.enroll("paris", "paris-2")
	tc.enroll("lyon", "lyon-1")
	admin := func(args ...string) []string { return append(args, tc.admin...) }

	r := run(t, admin("nodes", "revoke", "paris-1")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "revoked node paris-1") || !strings.Contains(r.stdout, "refused from now on") {
		t.Errorf("revoke said %q", r.stdout)
	}
	mustFailOneLine(t, run(t, admin("nodes", "revoke", "paris-1")...), `"paris-1"`, "already revoked")
	mustFailOneLine(t, run(t, admin("nodes", "revoke", "nosuch")...), `"nosuch"`, "nodes list")
	mustFailOneLine(t, run(t, admin("nodes", "revoke")...), "give one node name or ID")
	r = run(t, admin("nodes", "revoked")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "paris-1") {
		t.Errorf("nodes revoked = %q", r.stdout)
	}

	r = run(t, admin("nodes", "delete", "lyon-1")...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "deleted node lyon-1") {
		t.Errorf("delete said %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "warning: lyon-1 was seen") || !strings.Contains(r.stderr, "nodes revoke") {
		t.Errorf("deleting a node seen a moment ago: stderr %q, want a warning", r.stderr)
	}
	mustFailOneLine(t, run(t, admin("nodes", "delete", "lyon-1")...), `"lyon-1"`, "no enrolled node")
	mustFailOneLine(t, run(t, admin("nodes", "delete", "paris-1")...), "is revoked")
	r = run(t, admin("nodes", "list")...)
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "paris-1") || strings.Contains(r.stdout, "lyon-1") || !strings.Contains(r.stdout, "paris-2") {
		t.Errorf("nodes list after delete and revoke = %q", r.stdout)
	}
}

func TestNodesLogsBadInput(t *testing.T) {
	t.Parallel()
	tc := startCoord(t)
	tc.enroll("paris", "paris-1")
	admin := func(args ...string) []string { return append(args, tc.admin...) }
	mustFailOneLine(t, run(t, admin("nodes", "logs", "nosuch")...), `"nosuch"`, "nodes list")
	mustFailOneLine(t, run(t, admin("nodes", "logs", "paris-1", "--since", "yesterday")...), `"yesterday"`, "RFC 3339")
	mustFailOneLine(t, run(t, admin("nodes", "logs", "paris-1", "--level", "loud")...), `"loud"`)
	mustFailOneLine(t, run(t, admin("nodes", "logs")...), "give one node")
	// Enrolled but not running: the coordinator cannot reach it.
	r := run(t, admin("nodes", "logs", "paris-1")...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "unreachable") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("logs of a node that is not running: exit %d, %q", r.code, r.stderr)
	}
}
