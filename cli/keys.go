package cli

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/relaymesh/relaymesh/core"
)

// Names of the order-signing key files in a key directory.
const (
	privateKeyFile = "order.key"
	publicKeyFile  = "order.pub"
)

func (a *app) keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "manage the coordinator's order-signing key",
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "generate an ed25519 order-signing key pair",
				UsageText: "relaymesh keys init --out DIR [--json]",
				Description: "Writes DIR/" + privateKeyFile + " (mode 0600, keep it secret) and DIR/" + publicKeyFile +
					" (pinned on every node at enrollment) and prints the key ID. Refuses to overwrite either file.",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "out", Usage: "directory for " + privateKeyFile + " and " + publicKeyFile + " (created 0700 if missing)"},
					&cli.BoolFlag{Name: "json", Usage: "print key_id, private_key_file and public_key_file as JSON"},
				},
				Action: a.keysInit,
			},
			{
				Name:      "show",
				Usage:     "print the key ID and public key of a private key file",
				UsageText: "relaymesh keys show --key DIR/" + privateKeyFile + " [--json]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "private key file written by 'keys init'"},
					&cli.BoolFlag{Name: "json", Usage: "print key_id and public_key (hex) as JSON"},
				},
				Action: a.keysShow,
			},
		},
	}
}

func (a *app) keysInit(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	dir := c.String("out")
	if dir == "" {
		return usageErrorf("keys init: --out is empty: name the directory for the key files, e.g. --out ./keys")
	}
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return usageErrorf("keys init: --out %q is not a directory: give a directory", dir)
	}
	priv, pub := filepath.Join(dir, privateKeyFile), filepath.Join(dir, publicKeyFile)
	for _, p := range []string{priv, pub} {
		if _, err := os.Lstat(p); err == nil {
			return usageErrorf("keys init: %s exists: refusing to overwrite a key; choose another --out or move it away", p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return usageErrorf("keys init: --out %q: %w", dir, err)
	}
	key, err := core.GenerateKey()
	if err != nil {
		return fmt.Errorf("keys init: generate key: %w", err)
	}
	if err := core.WritePrivateKey(priv, key); err != nil {
		return fmt.Errorf("keys init: write %s: %w", priv, err)
	}
	pubKey := key.Public().(ed25519.PublicKey)
	if err := core.WritePublicKey(pub, pubKey); err != nil {
		return fmt.Errorf("keys init: write %s (the private key is already in %s): %w", pub, priv, err)
	}
	if c.Bool("json") {
		return a.printJSON(struct {
			KeyID          string `json:"key_id"`
			PrivateKeyFile string `json:"private_key_file"`
			PublicKeyFile  string `json:"public_key_file"`
		}{core.KeyID(pubKey), priv, pub})
	}
	if !a.quiet {
		fmt.Fprintf(a.stderr, "wrote %s (secret, mode 0600) and %s\n", priv, pub)
	}
	fmt.Fprintln(a.stdout, core.KeyID(pubKey))
	return nil
}

func (a *app) keysShow(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	path := c.String("key")
	if path == "" {
		return usageErrorf("keys show: --key is empty: give the private key file, e.g. --key ./keys/%s", privateKeyFile)
	}
	key, err := core.ReadPrivateKey(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usageErrorf("keys show: --key %q does not exist: create one with 'relaymesh keys init --out DIR'", path)
	case errors.Is(err, core.ErrKeyPermissions), errors.Is(err, core.ErrBadKeyFile):
		return usageErrorf("keys show: %w", err)
	case err != nil:
		return usageErrorf("keys show: --key %q: %w", path, err)
	}
	pub := key.Public().(ed25519.PublicKey)
	if c.Bool("json") {
		return a.printJSON(struct {
			KeyID     string `json:"key_id"`
			PublicKey string `json:"public_key"`
		}{core.KeyID(pub), hex.EncodeToString(pub)})
	}
	fmt.Fprintf(a.stdout, "key ID      %s\npublic key  %x\n", core.KeyID(pub), []byte(pub))
	return nil
}

// noArgs refuses positional arguments to a command that takes none.
func noArgs(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("%s: unexpected argument %q: this command takes only flags (flags go before arguments); see --help",
			cmdPath(c), c.Args().First())
	}
	return nil
}
