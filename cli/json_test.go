package cli

import (
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// Commands that print nothing a script would parse: daemons, the help and
// completion text, and the interactive demo.
var noJSON = []string{"coordinator serve", "node run", "demo", "help", "completion", "__complete"}

// TestEveryCommandHasJSON walks the command tree: every command that prints
// a result takes --json.
func TestEveryCommandHasJSON(t *testing.T) {
	t.Parallel()
	var missing []string
	var walk func(prefix string, cs []*cli.Command)
	walk = func(prefix string, cs []*cli.Command) {
		for _, c := range cs {
			path := strings.TrimSpace(prefix + " " + c.Name)
			if len(c.Subcommands) > 0 {
				walk(path, c.Subcommands)
				continue
			}
			if slices.Contains(noJSON, path) || slices.Contains(noJSON, c.Name) {
				continue
			}
			if !slices.ContainsFunc(c.Flags, func(f cli.Flag) bool { return slices.Contains(f.Names(), "json") }) {
				missing = append(missing, path)
			}
		}
	}
	walk("", newApp(io.Discard, io.Discard).cliApp().Commands)
	if len(missing) > 0 {
		t.Errorf("commands without --json: %s", strings.Join(missing, ", "))
	}
}

var (
	snakeKey  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	statusKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// mustJSON checks that r printed one JSON value whose object keys are all
// snake_case, and returns it.
func mustJSON(t *testing.T, r result) any {
	t.Helper()
	mustSucceed(t, r)
	var v any
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value:\n%s", r.stdout)
	}
	var check func(path string, v any)
	check = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				// counts is keyed by status code (WAITING_NOTIFICATION): data, not field names.
				if !snakeKey.MatchString(k) && !(strings.HasSuffix(path, ".counts") && statusKey.MatchString(k)) {
					t.Errorf("key %s.%s is not snake_case", path, k)
				}
				check(path+"."+k, e)
			}
		case []any:
			for _, e := range v {
				check(path+"[]", e)
			}
		}
	}
	check("", v)
	return v
}

// TestJSONOutputs runs the listing, show and action commands with --json
// against an in-process coordinator and a local key, package and store.
func TestJSONOutputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	obj := func(v any) map[string]any {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("want a JSON object, got %T", v)
		}
		return m
	}

	// Local commands.
	ci := obj(mustJSON(t, run(t, "coordinator", "init", "--json", "--dir", filepath.Join(dir, "c"))))
	if ci["peer_id"] == "" || ci["order_key_id"] == "" {
		t.Errorf("coordinator init: %v", ci)
	}
	ki := obj(mustJSON(t, run(t, "keys", "init", "--json", "--out", filepath.Join(dir, "k"))))
	ks := obj(mustJSON(t, run(t, "keys", "show", "--json", "--key", filepath.Join(dir, "k", privateKeyFile))))
	if ki["key_id"] != ks["key_id"] || ks["public_key"] == "" {
		t.Errorf("keys init %v, keys show %v", ki, ks)
	}
	archive := writeArchive(t, dir, "a.tgz", 100_000, 3)
	store, manifest := filepath.Join(dir, "s"), filepath.Join(dir, "m.json")
	pb := obj(mustJSON(t, run(t, "package", "build", "--json", "--name", "agent", "--version", "1", "--action", "launch",
		"--command", "./install.sh", "--fragment-size", "64KiB", "--store", store, "--out", manifest, archive)))
	if pb["package_id"] == "" || pb["fragments"] != 2.0 || pb["size"] == 0.0 || pb["published"] != false {
		t.Errorf("package build: %v", pb)
	}
	pv := obj(mustJSON(t, run(t, "package", "verify", "--json", "--store", store, "--archive", archive, manifest)))
	if pv["package_id"] != pb["package_id"] || pv["verified"] != "store+archive" {
		t.Errorf("package verify: %v", pv)
	}
	mustJSON(t, run(t, "package", "inspect", "--json", manifest))

	// Admin commands.
	c := startCoord(t)
	c.fleet()
	pkg := c.publish("tool")
	// admin runs the command named by words (flags go before arguments).
	admin := func(words string, args ...string) any {
		t.Helper()
		argv := append(strings.Fields(words), "--json")
		argv = append(append(argv, c.admin...), args...)
		return mustJSON(t, run(t, argv...))
	}
	_ = admin("token create", "--site", "nantes")
	_ = admin("nodes list")
	_ = admin("nodes show", "lyon-1")
	_ = admin("sites list")
	_ = admin("package list")
	_ = admin("package show", pkg)
	d := obj(admin("deploy create", "--node", "lyon-1", pkg))
	id, _ := d["id"].(string)
	if id == "" {
		t.Fatalf("deploy create: no id in %v", d)
	}
	_ = admin("deploy list")
	_ = admin("deploy show", id)
	v := obj(admin("deploy validate", id))
	if v["deployment_id"] != id {
		t.Errorf("deploy validate: %v", v)
	}
	_ = admin("deploy cancel", id)
	_ = admin("updates list")
	_ = admin("nodes revoked")
}
