// Command relaymesh is the relaymesh CLI: the admin's commands, the
// coordinator server and the node daemon. Everything lives in package cli.
package main

import (
	"os"

	"github.com/relaymesh/relaymesh/cli"
)

func main() {
	os.Exit(cli.Main(os.Args))
}
