package cli

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// reorderArgs moves a command's flags in front of its positional arguments,
// so `relaymesh deploy create PKG --all` works as well as
// `relaymesh deploy create --all PKG` (urfave/cli v2 stops reading flags at
// the first positional argument). Everything after "--" stays as given.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	i := 1
	flags, cmds := app.Flags, app.Commands
	// Global flags, then the command path.
	for i < len(args) {
		a := args[i]
		if isFlag(a) {
			out = append(out, a)
			i++
			if takesValue(flags, a) && i < len(args) {
				out = append(out, args[i])
				i++
			}
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		out = append(out, a)
		i++
		if next.SkipFlagParsing {
			return append(out, args[i:]...)
		}
		flags, cmds = next.Flags, next.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	var fl, pos []string
	for i < len(args) {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i:]...)
			break
		}
		if isFlag(a) {
			fl = append(fl, a)
			i++
			if takesValue(flags, a) && i < len(args) {
				fl = append(fl, args[i])
				i++
			}
			continue
		}
		pos = append(pos, a)
		i++
	}
	out = append(out, fl...)
	return append(out, pos...)
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// takesValue reports whether flag a (like --site or -site) needs the next
// argument as its value.
func takesValue(flags []cli.Flag, a string) bool {
	name := strings.TrimLeft(a, "-")
	if strings.Contains(name, "=") {
		return false
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				if dv, ok := f.(cli.DocGenerationFlag); ok {
					return dv.TakesValue()
				}
				return true
			}
		}
	}
	return false
}
