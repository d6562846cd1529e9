package simulations

import (
	"fmt"

	"github.com/relaymesh/relaymesh/internal/units"
)

// parseRate parses a scenario rate ("20Mbit/s", "100Mbps", "2.5MB/s",
// "512KiB/s": internal/units' grammar) into bytes per second. A simulated
// link has a finite rate, so unlimited and 0 are refused.
func parseRate(s string) (float64, error) {
	n, err := units.ParseRate(s)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%q: a simulated link needs a positive rate, such as 20Mbit/s", s)
	}
	return float64(n), nil
}

// parseSize parses a scenario size ("32MiB", "256KiB", "1GB", "1048576").
func parseSize(s string) (int64, error) {
	n, err := units.ParseSize(s)
	if err != nil {
		return 0, err
	}
	if n <= 0 {
		return 0, fmt.Errorf("%q: want a positive size, such as 32MiB", s)
	}
	return n, nil
}
