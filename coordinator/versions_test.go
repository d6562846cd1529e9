package coordinator

import (
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/testlog"
	"github.com/relaymesh/relaymesh/p2p"
)

// enrollAs enrolls a node straight through Enroll (no libp2p host)
// reporting version; it returns the node ID.
func enrollAs(t *testing.T, h *harness, site, name, version string) string {
	t.Helper()
	key, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.Enroll(id, &core.EnrollRequest{Token: h.token(TokenRequest{Site: site}),
		Info: core.NodeInfo{Hostname: name, OS: "linux", Arch: "amd64", Version: version}}); err != nil {
		t.Fatal(err)
	}
	return id.String()
}

// The coordinator says when the fleet runs more than one version: once
// when a new version appears, once when it is one version again, not on
// every sync of a rolling upgrade.
func TestMixedFleetVersions(t *testing.T) {
	t.Parallel()
	rec := testlog.NewRecorder(slog.LevelInfo)
	h := newHarnessLog(t, slog.New(testlog.Tee(rec, testlogHandler(t))))
	a := enrollAs(t, h, "lyon", "lyon-1", "v1.0.0")
	b := enrollAs(t, h, "lyon", "lyon-2", "v1.0.0")
	enrollAs(t, h, "paris", "paris-1", "v1.0.0")
	if n := len(rec.Messages("fleet runs mixed versions")); n != 0 {
		t.Fatalf("%d mixed-version warnings for a fleet of one version", n)
	}
	sync := func(id, name, version string) {
		t.Helper()
		if _, err := h.c.Sync(id, &core.SyncRequest{Info: core.NodeInfo{Hostname: name, OS: "linux", Arch: "amd64", Version: version}}); err != nil {
			t.Fatal(err)
		}
	}
	sync(a, "lyon-1", "v1.1.0")
	sync(a, "lyon-1", "v1.1.0")
	sync(b, "lyon-2", "v1.0.0")
	warns := rec.Messages("fleet runs mixed versions")
	if len(warns) != 1 || warns[0].Level != slog.LevelWarn || warns[0].Value("versions") != "v1.0.0 on 2 nodes, v1.1.0 on 1 node" {
		t.Fatalf("mixed-version warnings %+v: want one naming v1.0.0 on 2 nodes, v1.1.0 on 1 node", warns)
	}
	// Counts moving during the upgrade are not news.
	sync(b, "lyon-2", "v1.1.0")
	if n := len(rec.Messages("fleet runs mixed versions")); n != 1 {
		t.Errorf("%d warnings after a second node upgraded, want still 1", n)
	}

	var lyon, paris SiteView
	for _, s := range h.c.Sites() {
		switch s.Site {
		case "lyon":
			lyon = s
		case "paris":
			paris = s
		}
	}
	if len(lyon.Versions) != 1 || lyon.Versions[0] != (VersionCount{"v1.1.0", 2}) ||
		len(paris.Versions) != 1 || paris.Versions[0] != (VersionCount{"v1.0.0", 1}) {
		t.Errorf("site versions: lyon %+v paris %+v", lyon.Versions, paris.Versions)
	}

	for _, n := range h.c.Nodes() {
		if n.Site == "paris" {
			sync(n.ID, n.Name, "v1.1.0")
		}
	}
	ones := rec.Messages("fleet runs one version again")
	if len(ones) != 1 || ones[0].Level != slog.LevelInfo || ones[0].Value("version") != "v1.1.0" {
		t.Errorf("one-version lines %+v", ones)
	}

	// A restarted coordinator that finds a mixed fleet says so once.
	sync(a, "lyon-1", "v1.2.0")
	before := len(rec.Messages("fleet runs mixed versions"))
	h.restart()
	if n := len(rec.Messages("fleet runs mixed versions")); n != before+1 {
		t.Errorf("restart over a mixed fleet: %d warnings, want %d", n, before+1)
	}
}

func testlogHandler(t *testing.T) slog.Handler { return testLogger(t).Handler() }

func TestCountVersions(t *testing.T) {
	t.Parallel()
	got := CountVersions([]string{"v2", "v1", "v2", "", "v1", "v2"})
	want := []VersionCount{{"v2", 3}, {"v1", 2}, {"unknown", 1}}
	if len(got) != len(want) {
		t.Fatalf("CountVersions = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("CountVersions = %+v, want %+v", got, want)
		}
	}
	if s := FormatVersions(got); s != "v2 on 3 nodes, v1 on 2 nodes, unknown on 1 node" {
		t.Errorf("FormatVersions = %q", s)
	}
}
