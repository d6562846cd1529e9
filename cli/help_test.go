package cli

import (
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDidYouMean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"depoly"}, []string{`unknown command "depoly" (did you mean "deploy"?)`, "relaymesh --help"}},
		{[]string{"pakage", "build"}, []string{`(did you mean "package"?)`}},
		{[]string{"deploy", "craete"}, []string{`unknown command "craete" (did you mean "create"?)`, "relaymesh deploy --help"}},
		{[]string{"nodes", "lis"}, []string{`(did you mean "list"?)`}},
		{[]string{"deploy", "create", "--nod", "x", "PKG"}, []string{"-nod (did you mean --node?)", "relaymesh deploy create --help"}},
		{[]string{"--log-levl", "debug", "nodes", "list"}, []string{"(did you mean --log-level?)"}},
		{[]string{"help", "depoly"}, []string{`help: unknown command "depoly" (did you mean "deploy"?)`}},
		{[]string{"help", "deploy", "creat"}, []string{`"creat" (did you mean "create"?)`, "relaymesh deploy --help"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			mustFailOneLine(t, run(t, tc.args...), tc.want...)
		})
	}
	// Nothing close: no guess.
	r := run(t, "zzzzzz")
	if strings.Contains(r.stderr, "did you mean") {
		t.Errorf("stderr %q: a guess for a word close to nothing", r.stderr)
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"deploy", "deploy", 0}, {"depoly", "deploy", 1}, {"deplo", "deploy", 1},
		{"node", "nodes", 1}, {"kitten", "sitting", 3}, {"", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// `relaymesh help CMD...` prints what `relaymesh CMD... --help` does.
func TestHelpCommand(t *testing.T) {
	t.Parallel()
	for _, path := range [][]string{{}, {"deploy"}, {"deploy", "create"}, {"nodes", "list"}} {
		h := run(t, append([]string{"help"}, path...)...)
		mustSucceed(t, h)
		f := run(t, append(path, "--help")...)
		mustSucceed(t, f)
		if h.stdout != f.stdout || !strings.Contains(h.stdout, "USAGE") {
			t.Errorf("help %v printed\n%s\nwant what --help prints:\n%s", path, h.stdout, f.stdout)
		}
	}
}

func TestComplete(t *testing.T) {
	t.Parallel()
	ca := newApp(nil, nil).cliApp()
	for _, tc := range []struct {
		words     []string
		want, not []string
		wantNone  bool
	}{
		{words: []string{""}, want: []string{"deploy", "nodes", "package", "help", "completion"}, not: []string{completeCommand}},
		{words: nil, want: []string{"deploy"}},
		{words: []string{"de"}, want: []string{"deploy", "demo"}, not: []string{"nodes"}},
		{words: []string{"deploy", ""}, want: []string{"create", "list", "show", "cancel"}},
		{words: []string{"deploy", "create", "--"}, want: []string{"--node", "--site", "--dry-run", "--coordinator-url"}, not: []string{"--help"}},
		{words: []string{"deploy", "create", "--no"}, want: []string{"--node", "--not-before"}, not: []string{"--site"}},
		{words: []string{"deploy", "create", "--site", ""}, wantNone: true},
		{words: []string{"deploy", "create", "--site", "paris", "--dr"}, want: []string{"--dry-run"}},
		{words: []string{"--log-level", "debug", "no"}, want: []string{"nodes", "node"}},
		{words: []string{"package", "build", "archive.tgz", ""}, wantNone: true},
	} {
		got := complete(ca, tc.words)
		if tc.wantNone && len(got) != 0 {
			t.Errorf("complete(%q) = %q, want nothing", tc.words, got)
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("complete(%q) = %q, lacks %q", tc.words, got, w)
			}
		}
		for _, w := range tc.not {
			if slices.Contains(got, w) {
				t.Errorf("complete(%q) = %q, has %q", tc.words, got, w)
			}
		}
	}
	// Through the command line, flags after "__complete" reach it as words.
	r := run(t, "completion", completeCommand, "deploy", "create", "--dr")
	mustSucceed(t, r)
	if r.stdout != "--dry-run\n" {
		t.Errorf("completion __complete deploy create --dr printed %q", r.stdout)
	}
}

func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := run(t, "completion", sh)
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "relaymesh completion "+completeCommand) {
			t.Errorf("%s script does not call __complete:\n%s", sh, r.stdout)
		}
	}
	mustFailOneLine(t, run(t, "completion", "tcsh"), `"tcsh"`, "bash, zsh or fish")
	mustFailOneLine(t, run(t, "completion"), "bash, zsh or fish")

	// The bash script hands the words up to the cursor to relaymesh and
	// reads one candidate per line: run it with a stand-in relaymesh.
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "relaymesh.bash")
	if err := os.WriteFile(script, []byte(completionScripts["bash"]), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := `source "$1"; args_file=$2
relaymesh() { printf '%s\n' "--node" "--not before"; printf ' <%s>' "$@" > "$args_file"; }
COMP_WORDS=(relaymesh deploy create --no extra); COMP_CWORD=3
_relaymesh_complete
printf '[%s]\n' "${COMPREPLY[@]}"`
	argsFile := filepath.Join(dir, "args")
	out, err := exec.Command(bash, "-c", prog, "bash", script, argsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if got := string(out); got != "[--node]\n[--not before]\n" {
		t.Errorf("bash completion offered %q", got)
	}
	if args, _ := os.ReadFile(argsFile); string(args) != " <completion> <__complete> <deploy> <create> <--no>" {
		t.Errorf("bash completion ran relaymesh with %q", args)
	}
}

func TestLogFormat(t *testing.T) {
	t.Parallel()
	mustFailOneLine(t, run(t, "--log-format", "xml", "nodes", "list"), `--log-format "xml"`, "text or json")
	for _, tc := range []struct{ format, want string }{
		{"json", `{"time":`}, {"text", "time="},
	} {
		var errb strings.Builder
		a := newApp(nil, &errb)
		a.format = tc.format
		a.logger(slog.LevelInfo).Info("relay role changed", "relay", true)
		if !strings.HasPrefix(errb.String(), tc.want) || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("--log-format %s wrote %q", tc.format, errb.String())
		}
		if tc.format == "json" {
			var m map[string]any
			if err := json.Unmarshal([]byte(errb.String()), &m); err != nil || m["msg"] != "relay role changed" || m["relay"] != true {
				t.Errorf("json line %q: %v %v", errb.String(), m, err)
			}
		}
	}
}
