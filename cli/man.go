package cli

import "io"

// ManPage is relaymesh(1) in roff, generated from the commands and flags
// themselves so it cannot drift from --help (make package installs it).
func ManPage() (string, error) {
	return newApp(io.Discard, io.Discard).cliApp().ToManWithSection(1)
}
