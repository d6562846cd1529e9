package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// helpCommand is `relaymesh help [COMMAND...]`: the same text as
// `relaymesh COMMAND... --help`.
func (a *app) helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Usage:     "show the help of a command, like COMMAND --help",
		ArgsUsage: "[COMMAND...]",
		Action: func(c *cli.Context) error {
			path := c.Args().Slice()
			cmds := c.App.Commands
			for i, name := range path {
				var next *cli.Command
				for _, x := range cmds {
					if x.HasName(name) && !x.Hidden {
						next = x
					}
				}
				if next == nil {
					where := strings.TrimSpace("relaymesh " + strings.Join(path[:i], " "))
					return usageErrorf("help: unknown command %q%s: run '%s --help' for the list", name, didYouMean(name, commandNames(cmds)), where)
				}
				cmds = next.Subcommands
			}
			// A fresh app, so that this one's parsed state stays as it is.
			args := append(append([]string{"relaymesh"}, path...), "--help")
			return newApp(a.stdout, a.stderr).cliApp().RunContext(c.Context, args)
		},
	}
}

// commandNames are the names and aliases of the visible commands.
func commandNames(cmds []*cli.Command) []string {
	var out []string
	for _, c := range cmds {
		if !c.Hidden {
			out = append(out, c.Names()...)
		}
	}
	return out
}

// flagNames are the flags' names with their dashes.
func flagNames(flags []cli.Flag) []string {
	var out []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) == 1 {
				out = append(out, "-"+n)
			} else {
				out = append(out, "--"+n)
			}
		}
	}
	return out
}

// didYouMean is ` (did you mean "x"?)` naming the candidate closest to
// got, or "" when none is close: at most a third of its letters wrong
// (one at least), or got is the start of exactly one candidate.
func didYouMean(got string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := editDistance(got, c)
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	if bestDist >= 0 && bestDist <= max(1, len(got)/3) {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	var prefixed []string
	for _, c := range candidates {
		if len(got) >= 2 && strings.HasPrefix(c, got) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return fmt.Sprintf(" (did you mean %q?)", prefixed[0])
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b, counting a
// swap of two neighbouring letters as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j]: distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// unknownFlag is the flag named in urfave's "flag provided but not
// defined: -x" error, "" for other errors.
func unknownFlag(err error) string {
	const prefix = "flag provided but not defined: "
	msg := err.Error()
	if i := strings.Index(msg, prefix); i >= 0 {
		f := strings.Fields(msg[i+len(prefix):])
		if len(f) > 0 {
			return strings.TrimLeft(f[0], "-")
		}
	}
	return ""
}

// flagSuggestion is the did-you-mean for an unknown flag in err among
// flags, or "".
func flagSuggestion(err error, flags []cli.Flag) string {
	name := unknownFlag(err)
	if name == "" {
		return ""
	}
	cands := flagNames(flags)
	bare := make([]string, len(cands))
	for i, c := range cands {
		bare[i] = strings.TrimLeft(c, "-")
	}
	s := didYouMean(name, bare)
	if s == "" {
		return ""
	}
	// Name the suggestion with its dashes.
	for i, b := range bare {
		if s == fmt.Sprintf(" (did you mean %q?)", b) {
			return fmt.Sprintf(" (did you mean %s?)", cands[i])
		}
	}
	return s
}
