package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/relaymesh/relaymesh/coordinator"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/testlog"
	"github.com/relaymesh/relaymesh/p2p"
)

// testCoord is a coordinator on loopback whose nodes are enrolled straight
// through Coordinator.Enroll (no node daemons): enough for the admin
// commands.
type testCoord struct {
	t     *testing.T
	co    *coordinator.Coordinator
	admin []string // the flags that reach it
	ids   map[string]string
}

func startCoord(t *testing.T) *testCoord {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "coord")
	if _, err := coordinator.Init(dir); err != nil {
		t.Fatal(err)
	}
	cfg := coordinator.TestConfig(dir)
	cfg.Logger = testLog(t)
	co, err := coordinator.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := co.Start(ctx); err != nil {
		cancel()
		co.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := co.Close(); err != nil {
			t.Errorf("coordinator close: %v", err)
		}
	})
	return &testCoord{t: t, co: co, ids: map[string]string{},
		admin: []string{"--coordinator-url", co.AdminURL(), "--admin-token", co.AdminToken()}}
}

// enroll enrolls a node named name in site, running v1.0.0.
func (c *testCoord) enroll(site, name string) { c.enrollVersion(site, name, "v1.0.0") }

// enrollVersion enrolls a node named name in site that runs version.
func (c *testCoord) enrollVersion(site, name, version string) {
	c.t.Helper()
	tok, err := c.co.CreateToken(coordinator.TokenRequest{Site: site, Uses: 1})
	if err != nil {
		c.t.Fatal(err)
	}
	key, err := p2p.GenerateIdentity()
	if err != nil {
		c.t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.co.Enroll(id, &core.EnrollRequest{Token: tok.Token,
		Info: core.NodeInfo{Hostname: name, OS: "linux", Arch: "amd64", Version: version}}); err != nil {
		c.t.Fatal(err)
	}
	c.ids[name] = id.String()
}

// fleet enrolls lyon-1 in site lyon and paris-1..3 in site paris.
func (c *testCoord) fleet() {
	c.enroll("lyon", "lyon-1")
	for _, n := range []string{"paris-1", "paris-2", "paris-3"} {
		c.enroll("paris", n)
	}
}

// publish builds and publishes an archive-less package named name.
func (c *testCoord) publish(name string) string {
	c.t.Helper()
	dir := c.t.TempDir()
	r := run(c.t, append([]string{"--quiet", "package", "build", "--name", name, "--version", "1", "--action", "execute",
		"--command", "/bin/true", "--no-archive", "--store", filepath.Join(dir, "s"), "--out", filepath.Join(dir, "m.json")},
		c.admin...)...)
	mustSucceed(c.t, r)
	return strings.TrimSpace(r.stdout)
}

func (c *testCoord) deployments() []*coordinator.DeploymentView {
	return c.co.Deployments()
}

// testLog logs to t at warn and above: the coordinator's info lines
// would drown the command output the tests print.
func testLog(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelWarn) }

// A variable left in the shell (here from `token create --site paris`)
// must not widen a deployment: issue 16's worst fault.
func TestLeftoverEnvDoesNotChangeTargets(t *testing.T) {
	c := startCoord(t)
	c.fleet()
	pkg := c.publish("tool")
	t.Setenv("RELAYMESH_SITE", "paris")
	t.Setenv("RELAYMESH_TAG", "pos")
	t.Setenv("RELAYMESH_NODE", "paris-1")

	r := run(t, append([]string{"deploy", "create", "--node", "lyon-1", pkg}, c.admin...)...)
	mustSucceed(t, r)
	ds := c.deployments()
	if len(ds) != 1 || ds[0].Targets != 1 {
		t.Fatalf("deployments %+v: want one with 1 target", ds)
	}
	d, err := c.co.Deployment(ds[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Nodes) != 1 || d.Nodes[0].Node != c.ids["lyon-1"] {
		t.Errorf("deployment rows %+v: want only lyon-1", d.Nodes)
	}
	// The output names the one target.
	if !strings.Contains(r.stdout, "1 target,") || !strings.Contains(r.stdout, c.ids["lyon-1"]) ||
		strings.Contains(r.stdout, "paris") {
		t.Errorf("deploy create printed %q: want lyon-1 as the only target", r.stdout)
	}
}

// RELAYMESH_NAME (left from `node enroll`) must not name a package.
func TestLeftoverEnvDoesNotNamePackage(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RELAYMESH_NAME", "lyon-1")
	t.Setenv("RELAYMESH_VERSION", "9")
	t.Setenv("RELAYMESH_PRIORITY", "0")
	t.Setenv("RELAYMESH_COMMAND", "rm -rf /")
	base := []string{"package", "build", "--action", "execute", "--no-archive", "--store", filepath.Join(dir, "s"), "--out", filepath.Join(dir, "m.json")}
	mustFailOneLine(t, run(t, append(base, "--version", "1", "--command", "x")...), "--name")
	mustFailOneLine(t, run(t, append(base, "--name", "tool", "--version", "1")...), "--command")

	r := run(t, append(base, "--name", "tool", "--version", "1", "--command", "x")...)
	mustSucceed(t, r)
	r = run(t, "package", "inspect", "--json", filepath.Join(dir, "m.json"))
	mustSucceed(t, r)
	var m core.Manifest
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "tool" || m.Version != "1" || m.Priority != 5 || !slices.Equal(m.Command, []string{"x"}) {
		t.Errorf("manifest %+v: the environment changed it", m)
	}
}

// Connection settings still come from the environment.
func TestEnvConnectionSettings(t *testing.T) {
	c := startCoord(t)
	c.fleet()
	t.Setenv("RELAYMESH_COORDINATOR_URL", c.co.AdminURL())
	t.Setenv("RELAYMESH_ADMIN_TOKEN", c.co.AdminToken())
	r := run(t, "nodes", "list")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "lyon-1") {
		t.Errorf("nodes list with RELAYMESH_COORDINATOR_URL and RELAYMESH_ADMIN_TOKEN: %q", r.stdout)
	}
}

func TestDeployDryRun(t *testing.T) {
	t.Parallel()
	c := startCoord(t)
	c.fleet()
	pkg := c.publish("tool")

	r := run(t, append([]string{"deploy", "create", "--site", "paris", "--node", "lyon-1", "--dry-run", pkg}, c.admin...)...)
	mustSucceed(t, r)
	if len(c.deployments()) != 0 {
		t.Fatalf("--dry-run recorded a deployment: %+v", c.deployments())
	}
	if !strings.HasPrefix(r.stdout, "dry run: "+pkg+" would go to 4 targets; nothing signed\n") {
		t.Errorf("dry run printed %q", r.stdout)
	}
	for _, n := range []string{"lyon-1", "paris-1", "paris-2", "paris-3"} {
		if !strings.Contains(r.stdout, c.ids[n]) || !strings.Contains(r.stdout, n) {
			t.Errorf("dry run output lacks %s (%s):\n%s", n, c.ids[n], r.stdout)
		}
	}
	// The order sequence was not spent: the next real deployment is seq 1.
	r = run(t, append([]string{"deploy", "create", "--json", "--node", "lyon-1", pkg}, c.admin...)...)
	mustSucceed(t, r)
	var d coordinator.DeploymentView
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.Seq != 1 || d.DryRun || len(d.Resolved) != 1 || d.Resolved[0].Name != "lyon-1" || d.Resolved[0].Site != "lyon" {
		t.Errorf("deployment after a dry run: seq %d dry %v resolved %+v", d.Seq, d.DryRun, d.Resolved)
	}

	// A dry run checks what a real one checks.
	mustFailOneLine(t, run(t, append([]string{"deploy", "create", "--node", "ghost", "--dry-run", pkg}, c.admin...)...), `node "ghost"`)
	mustFailOneLine(t, run(t, append([]string{"deploy", "create", "--all", "--expires", "1000h", "--dry-run", pkg}, c.admin...)...), "expires")
	if len(c.deployments()) != 1 {
		t.Errorf("%d deployments, want 1", len(c.deployments()))
	}
}

// nodes list and sites list say when the fleet runs several versions.
func TestMixedVersionsShown(t *testing.T) {
	t.Parallel()
	c := startCoord(t)
	c.fleet()
	r := run(t, append([]string{"nodes", "list"}, c.admin...)...)
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "warning") {
		t.Errorf("nodes list warns about one version:\n%s", r.stdout)
	}
	c.enrollVersion("lyon", "lyon-2", "v1.1.0")
	r = run(t, append([]string{"nodes", "list"}, c.admin...)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "warning: the fleet runs 2 versions: v1.0.0 on 4 nodes, v1.1.0 on 1 node\n") {
		t.Errorf("nodes list:\n%s", r.stdout)
	}
	r = run(t, append([]string{"sites", "list"}, c.admin...)...)
	mustSucceed(t, r)
	lines := strings.Split(r.stdout, "\n")
	if !strings.Contains(lines[0], "VERSIONS") {
		t.Fatalf("sites list has no VERSIONS column:\n%s", r.stdout)
	}
	var lyon, paris string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "lyon "):
			lyon = l
		case strings.HasPrefix(l, "paris "):
			paris = l
		}
	}
	if !strings.Contains(lyon, "v1.0.0 (1), v1.1.0 (1)") || !strings.Contains(paris, " v1.0.0 ") {
		t.Errorf("sites list:\n%s", r.stdout)
	}
}

func TestPackageSuccessCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := []string{"package", "build", "--name", "tool", "--version", "1", "--action", "execute", "--no-archive",
		"--store", filepath.Join(dir, "s"), "--out", filepath.Join(dir, "m.json")}
	r := run(t, append(base, "--command", "setup.exe /quiet", "--success-codes", "0, 2")...)
	mustSucceed(t, r)
	r = run(t, "package", "inspect", filepath.Join(dir, "m.json"))
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "0, 2 (and 3010, 1641: reboot needed)") {
		t.Errorf("inspect does not show the success codes:\n%s", r.stdout)
	}
	for _, tc := range []struct {
		codes string
		want  []string
	}{
		{"zero", []string{`--success-codes "zero"`, "not an exit code"}},
		{"-1", []string{`"-1" is not an exit code`}},
		{"0,4294967296", []string{"4294967296"}},
		{"2,2", []string{"2 listed twice"}},
	} {
		mustFailOneLine(t, run(t, append(base, "--command", "x", "--success-codes", tc.codes)...), tc.want...)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte("not looked at")); err != nil || zw.Close() != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "conf.tar.gz")
	if err := os.WriteFile(archive, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	storeArgs := []string{"package", "build", "--name", "conf", "--version", "1", "--action", "store", "--store-path", "/opt/c",
		"--store", filepath.Join(dir, "s"), "--out", filepath.Join(dir, "c.json"), "--success-codes", "0", archive}
	mustFailOneLine(t, run(t, storeArgs...), "--success-codes", "no --command")
}

// deploy create --force reaches the coordinator (and so the order).
func TestDeployForce(t *testing.T) {
	t.Parallel()
	c := startCoord(t)
	c.fleet()
	pkg := c.publish("tool")
	r := run(t, append([]string{"deploy", "create", "--json", "--node", "lyon-1", "--force", pkg}, c.admin...)...)
	mustSucceed(t, r)
	var d coordinator.DeploymentView
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	// The order as lyon-1 gets it.
	resp, err := c.co.Sync(c.ids["lyon-1"], &core.SyncRequest{Info: core.NodeInfo{Hostname: "lyon-1", OS: "linux", Arch: "amd64"}})
	if err != nil || len(resp.Orders) != 1 {
		t.Fatalf("sync: %v, %d orders", err, len(resp.Orders))
	}
	o, err := core.DecodeOrder(resp.Orders[0].Payload)
	if err != nil || o.ID != d.ID || !o.Force {
		t.Errorf("order %+v (%v): want %s with force", o, err, d.ID)
	}
}

// deploy show's EXIT column shows the code of a command that ran, also a
// failing 0 (when the package declared other success codes), and "-" for
// rows where no command ended (ERR_ALREADY_SETUP, ERR_BUILD: -1).
func TestDeployShowExitColumn(t *testing.T) {
	t.Parallel()
	row := func(name string, st core.State, exit int) coordinator.RowView {
		return coordinator.RowView{Row: coordinator.Row{Node: name, State: st, ExitCode: exit}, Name: name, Site: "s"}
	}
	v := &coordinator.DeploymentView{ID: "d-1", State: coordinator.DeployIncomplete, Counts: map[core.State]int{},
		Nodes: []coordinator.RowView{row("ok", core.StateSuccess, 0), row("reboot", core.StateSuccess, 3010),
			row("exit3", core.ErrExecute, 3), row("exit0", core.ErrExecute, 0), row("nostart", core.ErrExecute, -1),
			row("already", core.ErrAlreadySetup, -1), row("build", core.ErrBuild, -1)}}
	var b strings.Builder
	writeDeployment(&b, v)
	for name, want := range map[string]string{"ok": "0", "reboot": "3010", "exit3": "3", "exit0": "0", "nostart": "-", "already": "-", "build": "-"} {
		var fields []string
		for _, l := range strings.Split(b.String(), "\n") {
			if f := strings.Fields(l); len(f) >= 4 && f[1] == name {
				fields = f
			}
		}
		if len(fields) < 4 || fields[3] != want {
			t.Errorf("row %s: %v, want EXIT %s\n%s", name, fields, want, b.String())
		}
	}
}

// deploy create --updates reaches the coordinator as a patch deployment
// (this one has no repositories configured, and says what to set); with
// neither packages nor --updates the command says both forms.
func TestDeployUpdatesFlag(t *testing.T) {
	t.Parallel()
	c := startCoord(t)
	c.fleet()
	mustFailOneLine(t, run(t, append([]string{"deploy", "create", "--all", "--updates", "security"}, c.admin...)...), "apt: repositories:")
	mustFailOneLine(t, run(t, append([]string{"deploy", "create", "--all", "--updates", "hello", "openssl=1.1"}, c.admin...)...), "apt: repositories:")
	mustFailOneLine(t, run(t, append([]string{"deploy", "create", "--all"}, c.admin...)...), "or --updates security|all|NAME[=VERSION]")
	if len(c.deployments()) != 0 {
		t.Errorf("%d deployments recorded", len(c.deployments()))
	}
}

// deploy show prints the elapsed time and bytes progress, each row's
// duration, and with --archived the rows deploy validate cleared.
func TestDeployShowProgressAndArchive(t *testing.T) {
	t.Parallel()
	v := &coordinator.DeploymentView{ID: "d-1", State: coordinator.DeployRunning, Counts: map[core.State]int{core.StateDownloading: 1},
		ElapsedS: 80, BytesFetched: 12 << 20, BytesTotal: 48 << 20,
		Nodes:    []coordinator.RowView{{Row: coordinator.Row{Node: "n1", State: core.StateDownloading}, Name: "n1", Site: "s", DurationS: 75.4}},
		Archived: []coordinator.RowView{{Row: coordinator.Row{Node: "n0", State: core.StateSuccess, Validated: true}, Name: "n0", Site: "s", DurationS: 20}}}
	var b strings.Builder
	writeDeployment(&b, v)
	for _, want := range []string{"progress: 12.0 MiB of 48.0 MiB fetched (25%), elapsed 1m20s", "TIME",
		"archived by deploy validate (1):"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("deploy show lacks %q:\n%s", want, b.String())
		}
	}
	for name, want := range map[string]string{"n1": "1m15s", "n0": "20s"} {
		found := false
		for _, l := range strings.Split(b.String(), "\n") {
			if f := strings.Fields(l); len(f) >= 5 && f[1] == name {
				found = f[4] == want
			}
		}
		if !found {
			t.Errorf("row %s: want TIME %s\n%s", name, want, b.String())
		}
	}

	// Against a coordinator: --archived asks for the archived rows.
	c := startCoord(t)
	c.fleet()
	pkg := c.publish("tool")
	r := run(t, append([]string{"deploy", "create", "--json", "--node", "lyon-1", pkg}, c.admin...)...)
	mustSucceed(t, r)
	var d coordinator.DeploymentView
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatal(err)
	}
	mustSucceed(t, run(t, append([]string{"deploy", "validate", "--all"}, append(c.admin, d.ID)...)...))
	r = run(t, append([]string{"deploy", "show"}, append(c.admin, d.ID)...)...)
	mustSucceed(t, r)
	if strings.Contains(r.stdout, "lyon-1") {
		t.Errorf("deploy show lists the cleared row:\n%s", r.stdout)
	}
	r = run(t, append([]string{"deploy", "show", "--archived"}, append(c.admin, d.ID)...)...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "archived by deploy validate (1):") || !strings.Contains(r.stdout, "lyon-1") {
		t.Errorf("deploy show --archived does not list lyon-1:\n%s", r.stdout)
	}
}
