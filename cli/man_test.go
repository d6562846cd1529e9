package cli

import (
	"strings"
	"testing"
)

// TestManPage: the generated man page is section 1 and names the commands
// an admin starts with.
func TestManPage(t *testing.T) {
	page, err := ManPage()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".TH relaymesh 1", "coordinator", "deploy", "node", "enroll"} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}
