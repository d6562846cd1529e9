package cli

import (
	"errors"
	"slices"
	"testing"
	"unicode/utf8"
)

var argvCases = []struct {
	in   string
	want []string
}{
	{"", nil},
	{"   ", nil},
	{"./install.sh", []string{"./install.sh"}},
	{"  a   b\tc\n", []string{"a", "b", "c"}},
	{`setup.sh --mode "full install"`, []string{"setup.sh", "--mode", "full install"}},
	{`sh -c 'echo "$HOME" | tee x'`, []string{"sh", "-c", `echo "$HOME" | tee x`}},
	{`a "" b ''`, []string{"a", "", "b", ""}},
	{`a\ b`, []string{"a b"}},
	{`"say \"hi\" \\ \n"`, []string{`say "hi" \ \n`}},
	{`C:\tools\setup.exe /S`, []string{`C:\tools\setup.exe`, "/S"}},
	{`'\\server\share\x.msi' /quiet`, []string{`\\server\share\x.msi`, "/quiet"}},
	{`it\'s`, []string{"it's"}},
	{`pre"mid dle"post`, []string{"premid dlepost"}},
	{`*.txt $X ; rm -rf /`, []string{"*.txt", "$X", ";", "rm", "-rf", "/"}},
}

func TestSplitArgv(t *testing.T) {
	t.Parallel()
	for _, tc := range argvCases {
		got, err := splitArgv(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("splitArgv(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if back, err := splitArgv(quoteArgv(got)); err != nil || !slices.Equal(back, got) {
			t.Errorf("splitArgv(quoteArgv(%q)) = %q, %v", got, back, err)
		}
	}
	for _, bad := range []string{`"abc`, `'abc`, `a "b' c`} {
		if _, err := splitArgv(bad); !errors.Is(err, errUnterminatedQuote) {
			t.Errorf("splitArgv(%q): err %v, want unterminated quote", bad, err)
		}
	}
}

// FuzzSplitArgv checks that splitting never panics and that quoteArgv
// round-trips whatever splitting produced.
func FuzzSplitArgv(f *testing.F) {
	for _, tc := range argvCases {
		f.Add(tc.in)
	}
	f.Add(`"abc`)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip()
		}
		argv, err := splitArgv(s)
		if err != nil {
			return
		}
		back, err := splitArgv(quoteArgv(argv))
		if err != nil || !slices.Equal(back, argv) {
			t.Fatalf("splitArgv(quoteArgv(%q)) = %q, %v", argv, back, err)
		}
	})
}

func TestHumanBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 1 << 20: "1.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestMaxUploadBadRate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustSucceed(t, run(t, "coordinator", "init", "--dir", dir))
	mustFailOneLine(t, run(t, "coordinator", "serve", "--dir", dir, "--max-upload", "fast"),
		`--max-upload`, `"fast"`, "100Mbit/s", "unlimited")
}
