package cli

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

var errBadSize = errors.New("want a whole number of bytes, optionally with KiB, MiB or GiB, like 65536, 64KiB or 1MiB")

// parseSize parses a byte count: "1048576", "1048576B", "64KiB", "1MiB",
// "1GiB" (binary units, case-insensitive, no fractions).
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: %w", s, errBadSize)
	}
	return n * mult, nil
}

// humanBytes renders n in binary units: "1.5 MiB", "512 B".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
