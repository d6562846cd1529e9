// Package units is relaymesh's one grammar for sizes and rates, used by
// command-line flags, the node's and the coordinator's config.yaml and the
// simulator's scenarios.
//
// A size is a number with an optional unit, SI (kB, MB, GB: powers of 1000)
// or IEC (KiB, MiB, GiB: powers of 1024), case-insensitive, with or without
// a space: 65536, 64KiB, 1.5GB, 64 MiB. A bare number is bytes.
//
// A rate is a size per second, written with or without "/s" (12.5MB/s,
// 500KiB/s, 12MB), or a bit rate: 100Mbit/s, 20 Mbit/s, 1Gbit, 100Mbps
// (bits, SI prefixes). "Bps" with a capital B is bytes: 12MBps. A bare
// number is bytes per second.
//
// Where a value caps something, "unlimited" (or "none") lifts the cap; it
// parses to 0, which is what every cap in relaymesh takes to mean no cap.
// Sizes and rates are parsed by github.com/dustin/go-humanize.
package units

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode"

	"github.com/dustin/go-humanize"
)

// Accepted forms, as error messages name them.
const (
	SizeForms = "a size such as 65536, 64KiB, 1.5GB or 64 MiB"
	RateForms = "a rate such as 100Mbit/s, 20 Mbit/s, 12.5MB/s or 500KiB/s"
)

var (
	// ErrBadSize: the text is not a size.
	ErrBadSize = errors.New("units: not a size")
	// ErrBadRate: the text is not a rate.
	ErrBadRate = errors.New("units: not a rate")
)

// Unlimited is how a lifted cap is written.
const Unlimited = "unlimited"

// ParseSize parses a size into bytes.
func ParseSize(s string) (int64, error) {
	n, err := parseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: want %s", ErrBadSize, s, SizeForms)
	}
	return n, nil
}

// ParseSizeCap is ParseSize that also takes "unlimited" (0).
func ParseSizeCap(s string) (int64, error) {
	if isUnlimited(s) {
		return 0, nil
	}
	n, err := parseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: want %s, or %s", ErrBadSize, s, SizeForms, Unlimited)
	}
	return n, nil
}

// ParseRate parses a rate into bytes per second (bit rates rounded down to
// whole bytes).
func ParseRate(s string) (int64, error) {
	n, err := parseRate(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: want %s", ErrBadRate, s, RateForms)
	}
	return n, nil
}

// ParseRateCap is ParseRate that also takes "unlimited" (0).
func ParseRateCap(s string) (int64, error) {
	if isUnlimited(s) {
		return 0, nil
	}
	n, err := parseRate(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %q: want %s, or %s", ErrBadRate, s, RateForms, Unlimited)
	}
	return n, nil
}

// FormatSize renders n in IEC units: "1.5 MiB", "512 B".
func FormatSize(n int64) string {
	if n < 0 {
		return "-" + humanize.IBytes(uint64(-n))
	}
	return humanize.IBytes(uint64(n))
}

// FormatRate renders bytes per second as a bit rate: "100 Mbit/s".
func FormatRate(bps int64) string {
	if bps <= 0 {
		return Unlimited
	}
	v, prefix := humanize.ComputeSI(float64(bps) * 8)
	return fmt.Sprintf("%s %sbit/s", humanize.Ftoa(math.Round(v*10)/10), prefix)
}

func isUnlimited(s string) bool {
	t := strings.ToLower(strings.TrimSpace(s))
	return t == Unlimited || t == "none"
}

var errSyntax = errors.New("syntax")

// split cuts "12.5 MB/s" into "12.5" and "MB/s".
func split(s string) (num, unit string, err error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit = t[:i], strings.TrimSpace(t[i:])
	if num == "" || strings.Count(num, ".") > 1 || num == "." {
		return "", "", errSyntax
	}
	return num, unit, nil
}

func parseBytes(s string) (int64, error) {
	num, unit, err := split(s)
	if err != nil {
		return 0, err
	}
	// humanize would take commas as thousands separators: only letters
	// may follow the number.
	if strings.IndexFunc(unit, func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
		return 0, errSyntax
	}
	n, err := humanize.ParseBytes(num + unit)
	if err != nil || n > math.MaxInt64 {
		return 0, errSyntax
	}
	return int64(n), nil
}

func parseRate(s string) (int64, error) {
	num, unit, err := split(s)
	if err != nil {
		return 0, err
	}
	unit, _ = strings.CutSuffix(unit, "/s")
	unit = strings.TrimSpace(unit)
	bits := false
	switch {
	case strings.HasSuffix(unit, "bps"): // 100Mbps: bits
		unit, bits = strings.TrimSuffix(unit, "bps"), true
	case strings.HasSuffix(unit, "Bps"): // 12MBps: bytes
		unit = strings.TrimSuffix(unit, "Bps")
	case strings.HasSuffix(strings.ToLower(unit), "bit"):
		unit, bits = unit[:len(unit)-3], true
	}
	if bits {
		if strings.ContainsAny(unit, "bB") {
			return 0, errSyntax
		}
		n, err := parseBytes(num + unit + "B")
		if err != nil {
			return 0, err
		}
		return n / 8, nil
	}
	if unit != "" && !strings.HasSuffix(strings.ToLower(unit), "b") {
		unit += "B" // 12M/s, 512Ki/s
	}
	return parseBytes(num + unit)
}
