// Package cli is the relaymesh command line: it parses flags, builds
// configurations and calls the library packages. Everything a command does
// beyond that belongs in core/, cache/, coordinator/ or node/.
//
// Adding a command: write `func (a *app) fooCommand() *cli.Command` in its
// own file (cli/foo.go) and list it in (*app).commands below. Flags have
// no environment variable unless they are listed in envFlags (cli/env.go):
// only connection and global settings do.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/relaymesh/relaymesh/internal/version"
)

// Version is the relaymesh version (internal/version: stamped by the
// build, or read from the build information).
var Version = version.String()

// Exit codes.
const (
	exitOK          = 0
	exitUsage       = 1   // the user gave something wrong
	exitFailure     = 2   // something failed that is not the user's input
	exitInterrupted = 130 // SIGINT / SIGTERM
)

// commands lists the top-level commands, in the order help shows them.
// Register a new command here (and nowhere else).
func (a *app) commands() []*cli.Command {
	return []*cli.Command{
		a.coordinatorCommand(),
		a.tokenCommand(),
		a.nodesCommand(),
		a.sitesCommand(),
		a.nodeCommand(),
		a.packageCommand(),
		a.deployCommand(),
		a.scanCommand(),
		a.updatesCommand(),
		a.keysCommand(),
		a.simCommand(),
		a.demoCommand(),
		a.helpCommand(),
		a.completionCommand(),
	}
}

// app is the state the commands share: where output goes and the logger
// the global flags configured. One app serves one Run.
type app struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	level          slog.Level // of log
	format         string     // of log: text or json
	quiet          bool       // global --quiet (commands may add their own)
	profile        *os.File   // --cpu-profile, open while the command runs
	// isTerminal reports whether w is an interactive terminal; tests
	// replace it.
	isTerminal func(w io.Writer) bool
}

// Main runs relaymesh with os.Args and the process's streams and returns
// the exit code. SIGINT and SIGTERM cancel the command's context.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdout, os.Stderr)
}

// Run runs the app in-process with args (args[0] is the program name) and
// returns the exit code. Errors are printed to stderr as one line
// "relaymesh: ...".
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ca := newApp(stdout, stderr).cliApp()
	err := ca.RunContext(ctx, reorderArgs(ca, args))
	return report(ctx, stderr, err)
}

// newApp returns an app writing to stdout and stderr.
func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdout:     stdout,
		stderr:     stderr,
		log:        slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
		isTerminal: isTerminal,
	}
}

// cliApp builds the urfave/cli application.
func (a *app) cliApp() *cli.App {
	ca := &cli.App{
		Name:    "relaymesh",
		Usage:   "peer-to-peer package and patch distribution",
		Version: Version,
		Description: "relaymesh builds packages, signs deployment orders and spreads them to a fleet " +
			"of nodes so that each package crosses each site's WAN link about once.\n\n" +
			envHelp(),
		Writer:    a.stdout,
		ErrWriter: a.stderr,
		// urfave's shared HelpFlag and VersionFlag are package globals that
		// flag parsing writes to, which races when apps run concurrently
		// (the tests). Every app gets its own copies instead; see addHelp.
		HideHelp:               true,
		HideHelpCommand:        true,
		HideVersion:            true,
		UseShortOptionHandling: false,
		Suggest:                true,
		// Errors are printed once, by report; never let urfave call os.Exit.
		ExitErrHandler: func(*cli.Context, error) {},
		Flags: []cli.Flag{
			&cli.StringFlag{
				Name:  "log-level",
				Value: "info",
				Usage: "log level: debug, info, warn or error",
			},
			&cli.StringFlag{
				Name:  "log-format",
				Value: "text",
				Usage: "log line format: text (key=value) or json (one object per line)",
			},
			&cli.BoolFlag{
				Name:  "quiet",
				Usage: "no progress bars or summaries; results only",
			},
			&cli.StringFlag{
				Name:  "cpu-profile",
				Usage: "write a Go CPU profile of this run to `FILE` (%p is replaced by the process ID), for go tool pprof",
			},
		},
		Before:   a.setup,
		After:    a.teardown,
		Commands: a.commands(),
	}
	ca.Action = a.rootAction
	forEachCommand(ca.Commands, func(c *cli.Command) {
		if c.Action == nil && len(c.Subcommands) > 0 {
			c.Action = groupAction
		}
	})
	bindEnv(ca.Flags)
	forEachCommand(ca.Commands, func(c *cli.Command) { bindEnv(c.Flags) })
	addHelp(ca)
	onUsageError(ca)
	return ca
}

// addHelp gives the app and every command their own --help flag, and the
// app a --version flag. They have no environment variable.
func addHelp(ca *cli.App) {
	help := func() cli.Flag {
		return &cli.BoolFlag{Name: "help", Aliases: []string{"h"}, Usage: "show help", DisableDefaultText: true}
	}
	ca.Flags = append(ca.Flags, help(),
		&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version", DisableDefaultText: true})
	forEachCommand(ca.Commands, func(c *cli.Command) {
		c.HideHelp, c.HideHelpCommand = true, true
		c.Flags = append(c.Flags, help())
	})
}

// rootAction runs for "relaymesh" with no command.
func (a *app) rootAction(c *cli.Context) error {
	if c.Bool("version") && !c.Args().Present() {
		fmt.Fprintf(a.stdout, "relaymesh %s\n", Version)
		return nil
	}
	return groupAction(c)
}

// setup applies the global flags.
func (a *app) setup(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return usageErrorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	switch f := c.String("log-format"); f {
	case "text", "json":
		a.format = f
	default:
		return usageErrorf("--log-format %q: want text or json", f)
	}
	a.level = level
	a.log = a.logger(level)
	a.quiet = c.Bool("quiet")
	if path := c.String("cpu-profile"); path != "" {
		path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
		f, err := os.Create(path)
		if err != nil {
			return usageErrorf("--cpu-profile: %v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return usageErrorf("--cpu-profile: %v", err)
		}
		a.profile = f
	}
	return nil
}

// teardown ends what setup started.
func (a *app) teardown(*cli.Context) error {
	if a.profile != nil {
		pprof.StopCPUProfile()
		err := a.profile.Close()
		a.profile = nil
		return err
	}
	return nil
}

// quietLog is the logger for libraries a one-shot command calls whose
// warnings the command reports itself as its one-line error (the cache's
// "corrupt fragment dropped"): errors only, unless --log-level is debug.
func (a *app) quietLog() *slog.Logger {
	if a.level <= slog.LevelDebug {
		return a.log
	}
	return a.logger(max(a.level, slog.LevelError))
}

// logger logs to stderr at level in the --log-format.
func (a *app) logger(level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if a.format == "json" {
		return slog.New(slog.NewJSONHandler(a.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(a.stderr, opts))
}

// groupAction runs for a command that only groups subcommands (and for the
// root): with no argument it shows help, with an unknown one it says so.
func groupAction(c *cli.Context) error {
	if c.Args().Present() {
		path := strings.TrimSpace(c.App.Name + " " + cmdPath(c))
		var cmds []*cli.Command
		if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
			cmds = c.Command.Subcommands
		} else {
			cmds = c.App.Commands
		}
		return usageErrorf("unknown command %q%s: run '%s --help' for the list", c.Args().First(),
			didYouMean(c.Args().First(), commandNames(cmds)), path)
	}
	if c.Command == nil || c.Command.Name == "" || c.Command.Name == c.App.Name {
		return cli.ShowAppHelp(c)
	}
	return cli.ShowSubcommandHelp(c)
}

// cmdPath is the command's name below the app, like "package build"; ""
// for the app itself.
func cmdPath(c *cli.Context) string {
	var names []string
	for _, x := range c.Lineage() {
		if x.Command == nil || x.Command.Name == "" || x.Command.Name == c.App.Name {
			continue
		}
		if len(names) > 0 && names[0] == x.Command.Name {
			continue
		}
		names = append([]string{x.Command.Name}, names...)
	}
	return strings.Join(names, " ")
}

// forEachCommand calls fn for every command and subcommand.
func forEachCommand(cmds []*cli.Command, fn func(*cli.Command)) {
	for _, c := range cmds {
		fn(c)
		forEachCommand(c.Subcommands, fn)
	}
}

// onUsageError makes flag parsing errors one-line usage errors instead of
// urfave's "Incorrect Usage" plus the whole help text.
func onUsageError(ca *cli.App) {
	handler := func(c *cli.Context, err error, _ bool) error {
		path := cmdPath(c)
		if path == "" {
			return usageErrorf("%s%s: run '%s --help' for the flags", err.Error(), flagSuggestion(err, c.App.Flags), c.App.Name)
		}
		return usageErrorf("%s: %s%s: run '%s %s --help' for the flags", path, err.Error(), flagSuggestion(err, c.Command.Flags), c.App.Name, path)
	}
	ca.OnUsageError = handler
	forEachCommand(ca.Commands, func(c *cli.Command) { c.OnUsageError = handler })
}

// usageErrorf is an error in what the user gave: exit code 1. The message
// should name the flag or argument, its value, and what to do.
func usageErrorf(format string, a ...any) error {
	return cli.Exit(fmt.Errorf(format, a...), exitUsage)
}

// report prints err as one line and returns the exit code.
func report(ctx context.Context, stderr io.Writer, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFailure
	if ec, ok := errors.AsType[cli.ExitCoder](err); ok {
		code = ec.ExitCode()
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		code = exitInterrupted
	}
	msg := oneLine(err.Error())
	if msg != "" {
		fmt.Fprintf(stderr, "relaymesh: %s\n", msg)
	}
	return code
}

// oneLine folds a multi-line message (errors.Join, wrapped tool output)
// into one line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
