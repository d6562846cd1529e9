package simulations

import (
	"path/filepath"
	"testing"
)

// Every shipped scenario parses and validates.
func TestShippedScenarios(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("scenarios/*.yaml")
	if err != nil || len(files) < 7 {
		t.Fatalf("scenarios: %v %v", files, err)
	}
	for _, f := range files {
		if _, err := LoadScenario(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}
