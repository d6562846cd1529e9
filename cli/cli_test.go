package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/core"
)

// result is what one in-process run of the app produced.
type result struct {
	code           int
	stdout, stderr string
}

// run runs relaymesh in-process with args.
func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"relaymesh"}, args...), &out, &errb)
	t.Logf("relaymesh %s\n-> exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
	return result{code, out.String(), errb.String()}
}

// mustSucceed fails the test unless r exited 0.
func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

// mustFailOneLine checks that r is a user error: exit 1 and exactly one
// line "relaymesh: ..." on stderr holding every want.
func mustFailOneLine(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.code != exitUsage {
		t.Errorf("exit %d, want %d", r.code, exitUsage)
	}
	if !strings.HasPrefix(r.stderr, "relaymesh: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr %q: want one line starting with 'relaymesh: '", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q does not mention %q", r.stderr, w)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout %q: want nothing on failure", r.stdout)
	}
}

// writeArchive writes size deterministic pseudo-random bytes to dir/name.
func writeArchive(t *testing.T, dir, name string, size int, seed uint64) string {
	t.Helper()
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	// The magic of the kind its name says (package build refuses
	// anything else); the rest stays random: these are never unpacked.
	if strings.HasSuffix(name, ".zip") {
		copy(data, "PK\x03\x04")
	} else {
		copy(data, "\x1f\x8b")
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Stat(p)
	return err == nil
}

var cidRe = regexp.MustCompile(`^bafkrei[a-z2-7]{52}$`)

func TestHelpEverywhere(t *testing.T) {
	t.Parallel()
	paths := [][]string{{}}
	var walk func(prefix []string, cmds []*cli.Command)
	walk = func(prefix []string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden {
				continue
			}
			p := append(append([]string{}, prefix...), c.Name)
			paths = append(paths, p)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, newApp(nil, nil).cliApp().Commands)
	for _, p := range paths {
		t.Run(strings.Join(append([]string{"relaymesh"}, p...), " "), func(t *testing.T) {
			t.Parallel()
			r := run(t, append(p, "--help")...)
			mustSucceed(t, r)
			if !strings.Contains(r.stdout, "USAGE") {
				t.Errorf("--help printed no usage: %q", r.stdout)
			}
		})
	}
}

// Only the flags of envFlags have an environment variable, and each
// of those exists somewhere.
func TestEnvOnlyForSettings(t *testing.T) {
	t.Parallel()
	ca := newApp(nil, nil).cliApp()
	seen := map[string]bool{}
	check := func(where string, flags []cli.Flag) {
		for _, f := range flags {
			name := f.Names()[0]
			seen[name] = true
			df, ok := f.(cli.DocGenerationFlag)
			if !ok {
				t.Errorf("%s --%s: %T: cannot tell its env vars", where, name, f)
				continue
			}
			env := df.GetEnvVars()
			if slices.Contains(envFlags, name) {
				if len(env) != 1 || env[0] != envName(name) {
					t.Errorf("%s --%s: env vars %v, want [%s]", where, name, env, envName(name))
				}
			} else if len(env) != 0 {
				t.Errorf("%s --%s: env vars %v: only connection and global settings may have one", where, name, env)
			}
		}
	}
	check("relaymesh", ca.Flags)
	forEachCommand(ca.Commands, func(c *cli.Command) { check(c.Name, c.Flags) })
	for _, f := range envFlags {
		if !seen[f] {
			t.Errorf("envFlags lists --%s, which no command has", f)
		}
	}
	if got := envName("coordinator-url"); got != "RELAYMESH_COORDINATOR_URL" {
		t.Errorf("envName(coordinator-url) = %s", got)
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"bogus"}, []string{`"bogus"`, "relaymesh --help"}},
		{[]string{"package", "bogus"}, []string{`"bogus"`, "relaymesh package --help"}},
		{[]string{"package", "build", "--bogus"}, []string{"-bogus", "relaymesh package build --help"}},
		{[]string{"--log-level", "loud", "package", "inspect", "x"}, []string{`--log-level "loud"`}},
		{[]string{"sim", "run"}, []string{"give one scenario file"}},
		{[]string{"sim", "run", "../simulations/scenarios/bench-4x8.yaml", "--cpuprofile", "/nonexistent/dir/cpu.prof"}, []string{"--cpuprofile", "/nonexistent/dir"}},
		{[]string{"sim", "run", "../simulations/scenarios/bench-4x8.yaml", "--timeline", "../go.mod/t.csv"}, []string{"--timeline", "go.mod", "writable file path"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			mustFailOneLine(t, run(t, tc.args...), tc.want...)
		})
	}
}

func TestReportOneLine(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	code := report(context.Background(), &b, usageErrorf("first\nsecond\n"))
	if code != exitUsage || b.String() != "relaymesh: first; second\n" {
		t.Errorf("report = %d %q", code, b.String())
	}
	b.Reset()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := report(ctx, &b, context.Canceled); code != exitInterrupted {
		t.Errorf("interrupted: exit %d, want %d", code, exitInterrupted)
	}
}

func TestPackageRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive := writeArchive(t, dir, "agent.tar.gz", 200_000, 1) // 4 fragments of 64 KiB
	store := filepath.Join(dir, "store")
	manifest := filepath.Join(dir, "agent.manifest.json")

	r := run(t, "package", "build", "--name", "agent", "--version", "1.2.3", "--os", "linux", "--arch", "arm64",
		"--action", "launch", "--command", `./install.sh --mode "full install"`, "--uninstall", "./uninstall.sh",
		"--priority", "3", "--timeout", "10m", "--fragment-size", "64KiB",
		"--store", store, "--out", manifest, archive)
	mustSucceed(t, r)
	id := strings.TrimSpace(r.stdout)
	if !cidRe.MatchString(id) {
		t.Fatalf("stdout %q: want the package ID", r.stdout)
	}
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := core.DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := core.FragmentCID(data).String(); got != id {
		t.Errorf("package ID %s, manifest file hashes to %s", id, got)
	}
	if len(m.Fragments) != 4 || m.Size != 200_000 || m.FragmentSize != 64<<10 || m.Priority != 3 ||
		m.TimeoutSec != 600 || m.OS != "linux" || m.Arch != "arm64" {
		t.Errorf("manifest %+v", m)
	}
	if want := []string{"./install.sh", "--mode", "full install"}; strings.Join(m.Command, "|") != strings.Join(want, "|") {
		t.Errorf("command %q, want %q", m.Command, want)
	}
	if stat, err := os.Stat(manifest); err != nil || stat.Mode().Perm() != 0o644 {
		t.Errorf("manifest file: %v %v", stat, err)
	}

	r = run(t, "package", "inspect", manifest)
	mustSucceed(t, r)
	for _, want := range []string{id, "agent", "1.2.3", "linux/arm64", "launch", `./install.sh --mode 'full install'`,
		"195.3 KiB (200000 bytes)", "4\n", "64.0 KiB", m.Digest, "600s"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = run(t, "package", "inspect", "--json", manifest)
	mustSucceed(t, r)
	var js struct {
		ID string `json:"id"`
		core.Manifest
	}
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		t.Fatalf("inspect --json: %v", err)
	}
	if js.ID != id || js.Name != "agent" || len(js.Fragments) != 4 {
		t.Errorf("inspect --json: %+v", js)
	}

	r = run(t, "package", "verify", "--store", store, "--archive", archive, manifest)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "OK "+id) {
		t.Errorf("verify stdout %q", r.stdout)
	}

	// The same archive built again gives the same package ID.
	r = run(t, "--quiet", "package", "build", "--name", "agent", "--version", "1.2.3", "--os", "linux", "--arch", "arm64",
		"--action", "launch", "--command", `./install.sh --mode "full install"`, "--uninstall", "./uninstall.sh",
		"--priority", "3", "--timeout", "10m", "--fragment-size", "65536",
		"--store", store, "--out", manifest, archive)
	mustSucceed(t, r)
	if strings.TrimSpace(r.stdout) != id || r.stderr != "" {
		t.Errorf("rebuild: stdout %q stderr %q, want only %s", r.stdout, r.stderr, id)
	}
}

func TestPackageExecuteWithoutArchive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, manifest := filepath.Join(dir, "store"), filepath.Join(dir, "m.json")
	r := run(t, "package", "build", "--name", "reboot", "--version", "1", "--action", "execute",
		"--command", "shutdown -r now", "--no-archive", "--store", store, "--out", manifest)
	mustSucceed(t, r)
	id := strings.TrimSpace(r.stdout)
	r = run(t, "package", "inspect", manifest)
	mustSucceed(t, r)
	if !regexp.MustCompile(`(?m)^archive +none$`).MatchString(r.stdout) || !strings.Contains(r.stdout, id) {
		t.Errorf("inspect:\n%s", r.stdout)
	}
	mustSucceed(t, run(t, "package", "verify", "--store", store, manifest))
	mustFailOneLine(t, run(t, "package", "verify", "--store", store, "--archive", manifest, manifest), "has no archive")
}

func TestPackageDefaultOutAndStore(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	archive := writeArchive(t, dir, "a.zip", 70_000, 2)
	r := run(t, "package", "build", "--name", "tool", "--version", "2.0", "--action", "store",
		"--store-path", "/opt/tool", "--os", "windows", "--arch", "amd64", archive)
	mustSucceed(t, r)
	if !exists(t, "tool-2.0.manifest.json") || !exists(t, "relaymesh-store") {
		t.Errorf("default --out or --store not used")
	}
	mustSucceed(t, run(t, "package", "verify", "tool-2.0.manifest.json"))
}

func TestPackageBuildBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive := writeArchive(t, dir, "a.tgz", 100_000, 3)
	empty := filepath.Join(dir, "empty.tgz")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--name", "agent", "--version", "1"}
	launch := append(append([]string{}, base...), "--action", "launch", "--command", "./install.sh")
	with := func(a []string, more ...string) []string { return append(append([]string{}, a...), more...) }

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"missing archive", with(launch, filepath.Join(dir, "nope.tgz")), []string{"nope.tgz", "does not exist"}},
		{"archive is a directory", with(launch, dir), []string{dir, "directory"}},
		{"empty archive", with(launch, empty), []string{"empty.tgz", "empty"}},
		{"no archive for launch", launch, []string{"needs an ARCHIVE"}},
		{"fragment size too small", with(launch, "--fragment-size", "1KiB", archive), []string{"--fragment-size 1KiB", "64KiB and 64MiB"}},
		{"fragment size too big", with(launch, "--fragment-size", "128MiB", archive), []string{"128MiB", "64KiB and 64MiB"}},
		{"fragment size zero", with(launch, "--fragment-size", "0", archive), []string{"--fragment-size 0", "64KiB"}},
		{"fragment size garbage", with(launch, "--fragment-size", "lots", archive), []string{`"lots"`, "KiB"}},
		{"priority too high", with(launch, "--priority", "11", archive), []string{"--priority 11", "0 and 10"}},
		{"priority negative", with(launch, "--priority", "-1", archive), []string{"--priority -1", "0 and 10"}},
		{"unknown action", with(base, "--action", "install", "--command", "x", archive), []string{`"install"`, "launch, execute or store"}},
		{"no action", with(base, archive), []string{"--action", "launch, execute or store"}},
		{"store without store path", with(base, "--action", "store", archive), []string{"--store-path"}},
		{"relative store path", with(base, "--action", "store", "--store-path", "opt/x", archive), []string{`"opt/x"`, "absolute"}},
		{"store path with launch", with(launch, "--store-path", "/opt/x", archive), []string{`"/opt/x"`, "--action store"}},
		{"launch without command", with(base, "--action", "launch", archive), []string{"--action launch needs --command"}},
		{"execute without command", with(base, "--action", "execute", "--no-archive"), []string{"--action execute needs --command"}},
		{"no-archive and archive", with(launch, "--no-archive", archive), []string{"--no-archive", "a.tgz"}},
		{"unterminated quote", with(base, "--action", "launch", "--command", `run "x`, archive), []string{"unterminated quote"}},
		{"no name", []string{"--version", "1", "--action", "launch", "--command", "x", archive}, []string{"--name"}},
		{"bad name", with([]string{"--name", "a b", "--version", "1"}, "--action", "launch", "--command", "x", archive), []string{`"a b"`}},
		{"bad os", with(launch, "--os", "plan9", archive), []string{`"plan9"`}},
		{"sub-second timeout", with(launch, "--timeout", "1500ms", archive), []string{"--timeout 1.5s"}},
		{"unknown flag after archive", with(launch, archive, "--prio", "3"), []string{"prio"}},
		{"two archives", with(launch, archive, archive), []string{"2 arguments"}},
		{"out dir missing", with(launch, "--out", filepath.Join(dir, "no", "m.json"), archive), []string{"does not exist"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sub := t.TempDir()
			store, out := filepath.Join(sub, "store"), filepath.Join(sub, "m.json")
			args := append([]string{"package", "build", "--store", store}, tc.args...)
			if !strings.Contains(tc.name, "out dir") {
				args = append([]string{"package", "build", "--store", store, "--out", out}, tc.args...)
			}
			mustFailOneLine(t, run(t, args...), tc.want...)
			if exists(t, out) {
				t.Errorf("manifest %s written", out)
			}
			if exists(t, store) {
				t.Errorf("store %s created although validation failed", store)
			}
		})
	}
}

func TestInspectBadManifest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive := writeArchive(t, dir, "a.tgz", 100_000, 4)
	manifest := filepath.Join(dir, "m.json")
	mustSucceed(t, run(t, "--quiet", "package", "build", "--name", "a", "--version", "1", "--action", "execute",
		"--command", "x", "--store", filepath.Join(dir, "s"), "--out", manifest, archive))
	data, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"truncated": data[:len(data)/2],
		"garbage":   []byte("\x00\x01not json at all"),
		"empty":     nil,
		"indented":  append([]byte(" "), data...), // not canonical
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), name+".json")
			if err := os.WriteFile(p, content, 0o644); err != nil {
				t.Fatal(err)
			}
			mustFailOneLine(t, run(t, "package", "inspect", p), p, "not a valid manifest")
			mustFailOneLine(t, run(t, "package", "verify", "--store", filepath.Join(dir, "s"), p), p, "not a valid manifest")
		})
	}
	mustFailOneLine(t, run(t, "package", "inspect", filepath.Join(dir, "nope.json")), "nope.json", "does not exist")
	mustFailOneLine(t, run(t, "package", "inspect"), "missing MANIFEST_FILE")
}

func TestVerifyFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive := writeArchive(t, dir, "a.tgz", 300_000, 5)
	other := writeArchive(t, dir, "b.tgz", 300_000, 6)
	store, manifest := filepath.Join(dir, "store"), filepath.Join(dir, "m.json")
	mustSucceed(t, run(t, "package", "build", "--name", "a", "--version", "1", "--action", "execute", "--command", "x",
		"--fragment-size", "64KiB", "--store", store, "--out", manifest, archive))
	data, _ := os.ReadFile(manifest)
	m, err := core.DecodeManifest(data)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("other archive", func(t *testing.T) {
		mustFailOneLine(t, run(t, "package", "verify", "--store", store, "--archive", other, manifest),
			"fragment 0", m.Fragments[0], "b.tgz")
	})
	t.Run("missing store", func(t *testing.T) {
		mustFailOneLine(t, run(t, "package", "verify", "--store", filepath.Join(dir, "nostore"), manifest), "nostore", "does not exist")
	})
	t.Run("other store", func(t *testing.T) {
		empty := filepath.Join(dir, "empty-store")
		st, err := openStore(empty, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		mustFailOneLine(t, run(t, "package", "verify", "--store", empty, manifest), "not in store")
	})
	t.Run("tampered fragment", func(t *testing.T) {
		tamperFragment(t, store, m.FragmentCIDs()[2])
		mustFailOneLine(t, run(t, "package", "verify", "--store", store, manifest),
			"fragment 2", m.Fragments[2], "does not match its CID")
		// The store dropped the bad copy; now the fragment is missing.
		mustFailOneLine(t, run(t, "package", "verify", "--store", store, manifest),
			"fragment 2", m.Fragments[2], "missing")
	})
}

func TestEnvVarSetsFlag(t *testing.T) {
	dir := t.TempDir()
	archive := writeArchive(t, dir, "a.tgz", 100_000, 7)
	store := filepath.Join(dir, "env-store")
	manifest := filepath.Join(dir, "m.json")
	t.Setenv("RELAYMESH_STORE", store)
	t.Setenv("RELAYMESH_QUIET", "true")
	t.Setenv("RELAYMESH_FRAGMENT_SIZE", "64KiB") // not a setting: ignored
	r := run(t, "package", "build", "--name", "a", "--version", "1", "--action", "execute", "--command", "x",
		"--out", manifest, archive)
	mustSucceed(t, r)
	if !exists(t, store) {
		t.Errorf("RELAYMESH_STORE=%s not used", store)
	}
	if r.stderr != "" {
		t.Errorf("RELAYMESH_QUIET=true but stderr %q", r.stderr)
	}
	data, _ := os.ReadFile(manifest)
	if m, err := core.DecodeManifest(data); err != nil || m.FragmentSize != 1<<20 {
		t.Errorf("RELAYMESH_FRAGMENT_SIZE changed the package: %v %v", m, err)
	}
	// A flag on the command line wins over the environment.
	other := filepath.Join(dir, "flag-store")
	mustSucceed(t, run(t, "package", "build", "--store", other, "--name", "a", "--version", "1", "--action", "execute",
		"--command", "x", "--out", manifest, archive))
	if !exists(t, other) {
		t.Errorf("--store %s did not win over RELAYMESH_STORE", other)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := run(t, "--version")
	mustSucceed(t, r)
	if r.stdout != "relaymesh "+Version+"\n" {
		t.Errorf("--version printed %q", r.stdout)
	}
}

// Flags may follow positional arguments, as in `deploy create PKG --all`.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	archive := filepath.Join(dir, "a.tgz")
	if err := os.WriteFile(archive, []byte("\x1f\x8bsome archive bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "m.json")
	res := run(t, "package", "build", archive, "--store", filepath.Join(dir, "s"), "--out", out,
		"--name", "agent", "--version", "1", "--action", "launch", "--command", "./install.sh", "--priority", "3")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	res = run(t, "package", "inspect", out, "--json")
	if res.code != 0 || !strings.Contains(res.stdout, `"priority": 3`) {
		t.Fatalf("inspect: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}
