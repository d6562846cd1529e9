package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/internal/debrepo"
)

func TestPackageBuildDeb(t *testing.T) {
	t.Parallel()
	debrepo.Need(t)
	dir := t.TempDir()
	deb := debrepo.BuildDeb(t, dir, debrepo.Pkg{Name: "hello-rm", Version: "1:2.10-3", Arch: "amd64"})
	out := filepath.Join(dir, "m.json")
	mustSucceed(t, run(t, "--quiet", "package", "build", "--store", filepath.Join(dir, "s"), "--out", out, "--priority", "2", deb))
	r := run(t, "package", "inspect", "--json", out)
	mustSucceed(t, r)
	var m core.Manifest
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(deb)
	if m.Name != "hello-rm" || m.Version != "1:2.10-3" || m.Arch != "amd64" || m.OS != "linux" || m.Action != core.ActionDeb ||
		m.Size != st.Size() || m.Priority != 2 || len(m.Command) != 0 {
		t.Fatalf("manifest %+v", m)
	}
	all := debrepo.BuildDeb(t, t.TempDir(), debrepo.Pkg{Name: "docs", Version: "3"})
	mustSucceed(t, run(t, "--quiet", "package", "build", "--store", filepath.Join(dir, "s"), "--out", filepath.Join(dir, "d.json"), all))
}

func TestPackageBuildDebBadInput(t *testing.T) {
	t.Parallel()
	debrepo.Need(t)
	dir := t.TempDir()
	deb := debrepo.BuildDeb(t, dir, debrepo.Pkg{Name: "tool", Version: "1.0"})
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.deb")
	if err := os.WriteFile(truncated, b[:len(b)-40], 0o644); err != nil {
		t.Fatal(err)
	}
	ar := filepath.Join(dir, "lib.a")
	if err := os.WriteFile(ar, []byte("!<arch>\nfoo.o/          0           0     0     644     4         `\nabcd"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tool.bin")
	if err := os.WriteFile(bin, []byte("\x7fELF\x02\x01\x01\x00rest"), 0o644); err != nil {
		t.Fatal(err)
	}
	mips := debrepo.BuildDeb(t, dir, debrepo.Pkg{Name: "odd", Version: "1", Arch: "mips64el"})
	base := []string{"package", "build", "--store", filepath.Join(dir, "s"), "--out", filepath.Join(dir, "m.json")}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{truncated}, []string{"truncated.deb", "damaged or truncated"}},
		{[]string{"--name", "other", deb}, []string{`--name "other"`, `control file says "tool"`}},
		{[]string{"--version", "2.0", deb}, []string{`--version "2.0"`, `says "1.0"`}},
		{[]string{"--action", "launch", "--command", "x", deb}, []string{"--action launch with a Debian package"}},
		{[]string{"--uninstall", "dpkg -r tool", deb}, []string{"--uninstall with a Debian package"}},
		{[]string{mips}, []string{`architecture "mips64el"`}},
		{[]string{"--name", "a", "--version", "1", "--action", "launch", "--command", "x", ar}, []string{"lib.a", "ar archive but not a Debian package", "not a tar.gz, zip or .deb"}},
		{[]string{"--name", "a", "--version", "1", "--action", "execute", "--command", "x", bin}, []string{"tool.bin", `starts with "\x7fELF`, "not a tar.gz, zip or .deb"}},
		{[]string{"--name", "a", "--version", "1", "--action", "deb", "--no-archive"}, []string{"--action deb needs the .deb"}},
	} {
		mustFailOneLine(t, run(t, append(base, tc.args...)...), tc.want...)
	}
}
