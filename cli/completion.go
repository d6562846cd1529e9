package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// completeCommand is the name of the hidden command the shell scripts call
// with the words typed so far; it prints the candidates for the last one.
const completeCommand = "__complete"

func (a *app) completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script: bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash:  source <(relaymesh completion bash)   (or save it in /etc/bash_completion.d/relaymesh)\n" +
			"zsh:   relaymesh completion zsh > \"${fpath[1]}/_relaymesh\"\n" +
			"fish:  relaymesh completion fish > ~/.config/fish/completions/relaymesh.fish",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("completion: give one shell: bash, zsh or fish")
			}
			script, ok := completionScripts[c.Args().First()]
			if !ok {
				return usageErrorf("completion: shell %q: want bash, zsh or fish", c.Args().First())
			}
			fmt.Fprint(a.stdout, script)
			return nil
		},
		Subcommands: []*cli.Command{{
			Name:            completeCommand,
			Hidden:          true,
			SkipFlagParsing: true,
			Action: func(c *cli.Context) error {
				for _, s := range complete(c.App, c.Args().Slice()) {
					fmt.Fprintln(a.stdout, s)
				}
				return nil
			},
		}},
	}
}

// complete returns the candidates for the last of words (the words typed
// after "relaymesh", the last one maybe empty): the subcommands of the
// command the words name, or its flags when the last word starts with a
// dash. Positional arguments get none: the shell completes file names.
func complete(app *cli.App, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	last := words[len(words)-1]
	flags, cmds := app.Flags, app.Commands
	for i := 0; i < len(words)-1; i++ {
		w := words[i]
		if isFlag(w) {
			if takesValue(flags, w) {
				i++ // its value
			}
			continue
		}
		var next *cli.Command
		for _, c := range cmds {
			if c.HasName(w) {
				next = c
			}
		}
		if next == nil {
			cmds = nil // past the commands: positional arguments
			continue
		}
		flags, cmds = next.Flags, next.Subcommands
	}
	if len(words) > 1 && isFlag(words[len(words)-2]) && takesValue(flags, words[len(words)-2]) {
		return nil // the value of a flag
	}
	var cands []string
	if strings.HasPrefix(last, "-") {
		for _, f := range flags {
			if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
				continue
			}
			if n := f.Names()[0]; n != "help" || last != "-" && last != "--" {
				cands = append(cands, "--"+n)
			}
		}
	} else {
		cands = commandNames(cmds)
	}
	var out []string
	for _, c := range cands {
		if strings.HasPrefix(c, last) {
			out = append(out, c)
		}
	}
	return out
}

// completionScripts call `relaymesh completion __complete WORDS...`.
var completionScripts = map[string]string{
	"bash": `# relaymesh completion for bash: source <(relaymesh completion bash)
_relaymesh_complete() {
    local IFS=$'\n'
    COMPREPLY=($(relaymesh completion __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _relaymesh_complete relaymesh
`,
	"zsh": `#compdef relaymesh
# relaymesh completion for zsh: relaymesh completion zsh > "${fpath[1]}/_relaymesh"
_relaymesh() {
    local -a cands
    cands=("${(@f)$(relaymesh completion __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    cands=(${cands:#})
    if (( ${#cands} )); then
        compadd -a cands
    else
        _files
    fi
}
if [[ "$funcstack[1]" = "_relaymesh" ]]; then
    _relaymesh "$@"
else
    compdef _relaymesh relaymesh
fi
`,
	"fish": `# relaymesh completion for fish: relaymesh completion fish > ~/.config/fish/completions/relaymesh.fish
function __relaymesh_complete
    set -l words (commandline -opc)
    relaymesh completion __complete $words[2..-1] (commandline -ct | string collect --allow-empty) 2>/dev/null
end
complete -c relaymesh -a '(__relaymesh_complete)'
`,
}
