package cli

import (
	"errors"
	"strconv"
	"strings"
)

var errBadRate = errors.New("want a rate per second such as 100Mbit, 20Mbit, 1Gbit, 12MB or 500KB")

// parseRate parses a per-second rate into bytes per second: units kbit,
// mbit, gbit (bits, decimal) or KB, MB, GB (bytes, decimal); a bare number
// is bytes.
func parseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(s, "/s"), "ps")))
	units := []struct {
		suffix string
		mult   float64
	}{
		{"kbit", 1e3 / 8}, {"mbit", 1e6 / 8}, {"gbit", 1e9 / 8},
		{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"b", 1},
	}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f <= 0 || f*mult > 1e15 {
		return 0, errBadRate
	}
	return int64(f * mult), nil
}
