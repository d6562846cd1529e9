package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// scanCoordinator runs a coordinator with two enrolled nodes in site
// paris, one of which reported a scan with two updates (one security).
func scanCoordinator(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "coord")
	if _, err := coordinator.Init(dir); err != nil {
		t.Fatal(err)
	}
	co, err := coordinator.Open(coordinator.TestConfig(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := co.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { co.Close() })
	tok, err := co.CreateToken(coordinator.TokenRequest{Site: "paris", Unlimited: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"web-1", "web-2"} {
		ident, err := p2p.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(ident)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := co.Enroll(id, &core.EnrollRequest{Token: tok.Token, Info: core.NodeInfo{Hostname: name, OS: "linux", Arch: "amd64"}}); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			continue
		}
		r := &core.ScanReport{Schema: core.ScanSchema, NodeID: id.String(), Seq: 1, Time: time.Now().UTC().Truncate(time.Second),
			Inventory: core.Inventory{Manager: "dpkg", OS: core.OSRelease{PrettyName: "Debian GNU/Linux 12 (bookworm)"}, Kernel: "6.1.0-18-amd64",
				InstalledCount: 2, RebootRequired: true, RebootPackages: []string{"linux-image-6.1.0-18-amd64"},
				Updates: []core.Update{
					{Name: "bar", Arch: "all", Installed: "1.0", Candidate: "1.0+sec1", Security: true, Suites: []string{"stable-security"}},
					{Name: "foo", Arch: "all", Installed: "1.0", Candidate: "1.1", Suites: []string{"stable"}},
				}}}
		env, err := core.SignScan(r, p2p.Ed25519Raw(ident))
		if err != nil {
			t.Fatal(err)
		}
		if ack := co.Intake([]*core.Envelope{env}); ack.Results[0] != core.AckApplied {
			t.Fatalf("intake: %+v", ack)
		}
	}
	return dir
}

func TestUpdatesCommands(t *testing.T) {
	t.Parallel()
	dir := scanCoordinator(t)
	r := run(t, "updates", "list", "--coordinator-dir", dir, "--nodes")
	mustSucceed(t, r)
	for _, want := range []string{"bar", "1.0 → 1.0+sec1", "yes", "paris:1", "paris/web-1", "foo", "1.0 → 1.1",
		"fleet: 0% compliant (0 of 2 nodes), 0% without missing security updates; 1 scanned, 1 never scanned", "1 need a reboot"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("updates list does not say %q:\n%s", want, r.stdout)
		}
	}
	if strings.Index(r.stdout, "bar") > strings.Index(r.stdout, "foo") {
		t.Errorf("security update not listed first:\n%s", r.stdout)
	}
	r = run(t, "updates", "list", "--coordinator-dir", dir, "--json", "--security")
	mustSucceed(t, r)
	var rep coordinator.UpdatesReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Updates) != 1 || rep.Updates[0].Package != "bar" || rep.Fleet.Nodes != 2 || rep.Fleet.MissingSecurity != 1 {
		t.Errorf("json %+v", rep)
	}
	r = run(t, "updates", "list", "--coordinator-dir", dir, "--csv")
	mustSucceed(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "site,node,node_id,status,package") ||
		!strings.HasPrefix(lines[1], "paris,web-1,") || !strings.Contains(lines[1], ",missing,bar,all,1.0,1.0+sec1,true,stable-security,") ||
		!strings.Contains(lines[3], ",not scanned,") {
		t.Errorf("csv:\n%s", r.stdout)
	}
	mustFailOneLine(t, run(t, "updates", "list", "--coordinator-dir", dir, "--csv", "--json"), "--csv and --json")

	r = run(t, "nodes", "show", "web-1", "--updates", "--coordinator-dir", dir)
	mustSucceed(t, r)
	for _, want := range []string{"Debian GNU/Linux 12 (bookworm)", "6.1.0-18-amd64", "Reboot required", "bar", "1.0+sec1", "stable-security"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("nodes show --updates does not say %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, "nodes", "show", "web-2", "--updates", "--coordinator-dir", dir)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "has not reported a scan yet: relaymesh scan --node web-2") {
		t.Errorf("web-2: %s", r.stdout)
	}
	r = run(t, "sites", "list", "--coordinator-dir", dir)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "COMPLIANT") || !strings.Contains(r.stdout, "1/2") || !strings.Contains(r.stdout, "fleet: 0% compliant") {
		t.Errorf("sites list:\n%s", r.stdout)
	}

	r = run(t, "scan", "--site", "paris", "--coordinator-dir", dir)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "sent to 2 nodes") || !strings.Contains(r.stdout, "relaymesh deploy show s-") {
		t.Errorf("scan: %s", r.stdout)
	}
	mustFailOneLine(t, run(t, "scan", "--coordinator-dir", dir), "no targets", "--all")
	mustFailOneLine(t, run(t, "scan", "--node", "nobody", "--coordinator-dir", dir), `node "nobody"`)
	mustFailOneLine(t, run(t, "scan", "--all", "--expires", "soon", "--coordinator-dir", dir), `expires "soon"`)
}
