package simulations

import (
	"fmt"
	"strconv"
	"strings"
)

// parseRate parses a rate such as "20Mbit/s", "100Mbps", "2.5MB/s" or
// "512KiB/s" into bytes per second.
func parseRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"Gbit/s", 1e9 / 8}, {"Mbit/s", 1e6 / 8}, {"kbit/s", 1e3 / 8}, {"Kbit/s", 1e3 / 8}, {"bit/s", 1.0 / 8},
		{"Gbps", 1e9 / 8}, {"Mbps", 1e6 / 8}, {"kbps", 1e3 / 8},
		{"GiB/s", 1 << 30}, {"MiB/s", 1 << 20}, {"KiB/s", 1 << 10},
		{"GB/s", 1e9}, {"MB/s", 1e6}, {"KB/s", 1e3}, {"kB/s", 1e3}, {"B/s", 1},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q: want a positive number before %s", s, u.suffix)
			}
			return v * u.mult, nil
		}
	}
	return 0, fmt.Errorf("%q: want a rate such as 20Mbit/s, 100Mbps or 2MB/s", s)
}

// parseSize parses a size such as "32MiB", "256KiB", "1GB" or "1048576".
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   float64
	}{
		{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1}, {"", 1},
	}
	for _, u := range units {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v <= 0 {
				return 0, fmt.Errorf("%q: want a positive size such as 32MiB", s)
			}
			return int64(v * u.mult), nil
		}
	}
	return 0, fmt.Errorf("%q: want a size such as 32MiB", s)
}
