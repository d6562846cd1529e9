// Command vulndb backs `make vulncheck` (scripts/vulncheck.sh):
//
//	vulndb convert -src DIR -info FILE -out DIR   vulndb module -> govulncheck -db layout
//	vulndb gate < scan.json                       exit 1 on reachable findings with a fix
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/relaymesh/relaymesh/internal/vulndb"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "vulndb:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: vulndb convert -src DIR -info FILE -out DIR | vulndb gate < scan.json")
	}
	switch args[0] {
	case "convert":
		fs := flag.NewFlagSet("convert", flag.ContinueOnError)
		src := fs.String("src", "", "data/osv of the golang.org/x/vulndb module")
		info := fs.String("info", "", "the module version's .info file (its Time dates the database)")
		out := fs.String("out", "", "directory to create; must not exist")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *src == "" || *info == "" || *out == "" {
			return fmt.Errorf("convert needs -src, -info and -out")
		}
		if _, err := os.Stat(*out); err == nil {
			return fmt.Errorf("convert: %s exists: remove it or pick another -out", *out)
		}
		t, err := vulndb.InfoTime(*info)
		if err != nil {
			return err
		}
		// Build next to out and rename, so an interrupted run never
		// leaves a half database where the cache expects a whole one.
		tmp, err := os.MkdirTemp(filepath.Dir(*out), ".vulndb-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		st, err := vulndb.Convert(*src, filepath.Join(tmp, "db"), t)
		if err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(tmp, "db"), *out); err != nil {
			return err
		}
		fmt.Printf("vulndb: %d entries, %d modules, modified %s -> %s\n", st.Entries, st.Modules, st.Modified.Format("2006-01-02"), *out)
		return nil
	case "gate":
		rep, err := vulndb.Gate(os.Stdin)
		if err != nil {
			return err
		}
		rep.Write(os.Stdout)
		if len(rep.Blocking) > 0 {
			fmt.Printf("vulncheck: FAIL: %d reachable vulnerabilities have a fix; apply the fixes above\n", len(rep.Blocking))
			os.Exit(1)
		}
		fmt.Println("vulncheck: ok")
		return nil
	}
	return fmt.Errorf("unknown command %q: want convert or gate", args[0])
}
