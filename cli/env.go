package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// envPrefix starts the environment variable of every flag that has one.
const envPrefix = "RELAYMESH_"

// envFlags are the only flags an environment variable may set: where the
// coordinator is and how to authenticate to it, global settings (logging,
// output), and the directory a command keeps its state in. A variable
// left over in a shell must never change what a command acts on, so
// targets, package fields, names, sites and tags have none: a stale
// RELAYMESH_SITE must not widen a deployment, a stale RELAYMESH_NAME must
// not rename a package. Adding a flag here is a decision: say why in the
// commit.
var envFlags = []string{
	// connection
	"coordinator-url", "admin-token", "token-file", "coordinator-dir", "ca",
	// global
	"log-level", "log-format", "quiet", "cpu-profile",
	// where state lives
	"store", "dir",
}

// envName is the environment variable bound to a flag: RELAYMESH_ and the
// flag's name upper-cased, dashes as underscores.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv binds the flags listed in envFlags to RELAYMESH_<FLAG> and makes
// sure every other flag has no environment variable at all. A flag type it
// does not know is a programming error, caught by TestEnvOnlyForSettings.
func bindEnv(flags []cli.Flag) {
	for _, f := range flags {
		var env []string
		if name := f.Names()[0]; slices.Contains(envFlags, name) {
			env = []string{envName(name)}
		}
		switch f := f.(type) {
		case *cli.StringFlag:
			f.EnvVars = env
		case *cli.PathFlag:
			f.EnvVars = env
		case *cli.BoolFlag:
			f.EnvVars = env
		case *cli.IntFlag:
			f.EnvVars = env
		case *cli.Int64Flag:
			f.EnvVars = env
		case *cli.UintFlag:
			f.EnvVars = env
		case *cli.DurationFlag:
			f.EnvVars = env
		case *cli.StringSliceFlag:
			f.EnvVars = env
		case *cli.GenericFlag:
			f.EnvVars = env
		case *cli.TimestampFlag:
			f.EnvVars = env
		default:
			panic(fmt.Sprintf("cli: flag --%s has type %T: teach bindEnv about it", f.Names()[0], f))
		}
	}
}

// envHelp is the paragraph of the app's help about the environment.
func envHelp() string {
	names := make([]string, len(envFlags))
	for i, f := range envFlags {
		names[i] = envName(f)
	}
	return "Only connection and global settings can also come from the environment: " +
		strings.Join(names, ", ") + " (each flag's help names its variable; the command line wins). " +
		"What a command acts on (targets, package fields, names, sites, tags) comes only from the command line."
}
