package cli

import (
	"strings"
	"testing"
)

// sites rotate-key: an unknown site and a second rotation while one runs
// fail with one clear line; sites list shows the rotation's phase and
// the live nodes it waits for (these nodes never sync, so it waits).
func TestSitesRotateKey(t *testing.T) {
	t.Parallel()
	c := startCoord(t)
	c.fleet()
	mustFailOneLine(t, run(t, append([]string{"sites", "rotate-key", "nowhere"}, c.admin...)...), `site "nowhere" has no enrolled node`)
	mustFailOneLine(t, run(t, append([]string{"sites", "rotate-key"}, c.admin...)...), "give one SITE")
	r := run(t, append([]string{"sites", "rotate-key", "paris"}, c.admin...)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "site paris: gossip key rotation started") {
		t.Errorf("rotate-key: %s", r.stdout)
	}
	mustFailOneLine(t, run(t, append([]string{"sites", "rotate-key", "paris"}, c.admin...)...), "a gossip key rotation of site paris is already adding")
	order := r.stdout[strings.Index(r.stdout, "(order ")+len("(order ") : strings.Index(r.stdout, ");")]
	mustFailOneLine(t, run(t, append([]string{"deploy", "cancel", order}, c.admin...)...), "is a step of a gossip key rotation")
	r = run(t, append([]string{"sites", "list"}, c.admin...)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "GOSSIP KEY") || !strings.Contains(r.stdout, "adding, waiting for paris-1,paris-2,paris-3") {
		t.Errorf("sites list:\n%s", r.stdout)
	}
}
