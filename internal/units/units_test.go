package units

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"1048576", 1 << 20}, {"65536B", 65536}, {"64KiB", 64 << 10}, {"64 KiB", 64 << 10},
		{"64kib", 64 << 10}, {"1MiB", 1 << 20}, {"1mib", 1 << 20}, {"64MiB", 64 << 20}, {"2GiB", 2 << 30},
		{"1.5GB", 1_500_000_000}, {"1.5KB", 1500}, {"1.5MiB", 3 << 19}, {"64KB", 64_000}, {"1kB", 1000},
		{" 32MiB ", 32 << 20},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "-1MiB", "1e6", "lots", "1.2.3MiB", "99999999999GiB", "8EiB", "64 K iB", "1,000", "unlimited"} {
		got, err := ParseSize(bad)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, got)
			continue
		}
		if !errors.Is(err, ErrBadSize) || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), "64KiB") {
			t.Errorf("ParseSize(%q): error %q should name the value and the accepted forms", bad, err)
		}
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"100Mbit/s", 12_500_000}, {"20 Mbit/s", 2_500_000}, {"20Mbit", 2_500_000}, {"1Gbit", 125_000_000},
		{"8bit/s", 1}, {"100kbit/s", 12_500}, {"100Kbit/s", 12_500}, {"100mbit", 12_500_000},
		{"100Mbps", 12_500_000}, {"12MBps", 12_000_000},
		{"12.5MB/s", 12_500_000}, {"2MB/s", 2_000_000}, {"12MB", 12_000_000}, {"500KB", 500_000},
		{"1MiB/s", 1 << 20}, {"512KiB/s", 512 << 10}, {"12M/s", 12_000_000}, {"1000", 1000}, {"1000B/s", 1000},
	} {
		got, err := ParseRate(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "fast", "Mbit/s", "-5Mbit/s", "10 Mbit/h", "1e6", "10MBbit", "unlimited"} {
		got, err := ParseRate(bad)
		if err == nil {
			t.Errorf("ParseRate(%q) = %d, want an error", bad, got)
			continue
		}
		if !errors.Is(err, ErrBadRate) || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), "100Mbit/s") {
			t.Errorf("ParseRate(%q): error %q should name the value and the accepted forms", bad, err)
		}
	}
}

func TestCaps(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"unlimited", "Unlimited", " none ", "0"} {
		if n, err := ParseRateCap(in); err != nil || n != 0 {
			t.Errorf("ParseRateCap(%q) = %d, %v; want 0", in, n, err)
		}
		if n, err := ParseSizeCap(in); err != nil || n != 0 {
			t.Errorf("ParseSizeCap(%q) = %d, %v; want 0", in, n, err)
		}
	}
	if n, err := ParseRateCap("100Mbit/s"); err != nil || n != 12_500_000 {
		t.Errorf("ParseRateCap(100Mbit/s) = %d, %v", n, err)
	}
	if n, err := ParseSizeCap("2GiB"); err != nil || n != 2<<30 {
		t.Errorf("ParseSizeCap(2GiB) = %d, %v", n, err)
	}
	if _, err := ParseRateCap("infinite"); err == nil || !strings.Contains(err.Error(), "unlimited") {
		t.Errorf("ParseRateCap(infinite): error %v should offer unlimited", err)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 1 << 20: "1.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
	for bps, want := range map[int64]string{0: "unlimited", 12_500_000: "100 Mbit/s", 2_500_000: "20 Mbit/s", 1_562_500: "12.5 Mbit/s"} {
		if got := FormatRate(bps); got != want {
			t.Errorf("FormatRate(%d) = %q, want %q", bps, got, want)
		}
	}
}

type limits struct {
	MaxBytes int64 `units:"size"`
	MaxFiles int
}

type conf struct {
	Quota  int64  `yaml:"quota" units:"size,cap"`
	Upload int64  `yaml:"upload" units:"rate,cap"`
	Floor  int64  `yaml:"floor" units:"rate"`
	Name   string `yaml:"name"`
	Lim    limits `yaml:"limits"`
}

func TestDecodeYAML(t *testing.T) {
	t.Parallel()
	var c conf
	c.Floor = 7
	err := DecodeYAML([]byte("quota: 64MiB\nupload: unlimited\nname: 12MB\nlimits: {maxbytes: 1.5GB, maxfiles: 10}\n"), &c)
	if err != nil {
		t.Fatal(err)
	}
	want := conf{Quota: 64 << 20, Upload: 0, Floor: 7, Name: "12MB", Lim: limits{MaxBytes: 1_500_000_000, MaxFiles: 10}}
	if c != want {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if err := DecodeYAML([]byte("quota: 1048576\nupload: 20 Mbit/s\n"), &c); err != nil || c.Quota != 1<<20 || c.Upload != 2_500_000 {
		t.Errorf("decoded %+v, %v", c, err)
	}
	for doc, wantErr := range map[string]string{
		"floor: unlimited\n":      `line 1: floor: units: not a rate: "unlimited"`,
		"name: x\nquota: lots\n":  `line 2: quota: units: not a size: "lots"`,
		"limits: {maxbytes: x}\n": `limits.maxbytes: units: not a size: "x"`,
		"typo: 1\n":               "field typo not found",
	} {
		err := DecodeYAML([]byte(doc), &c)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("DecodeYAML(%q) = %v, want an error containing %q", doc, err, wantErr)
		}
	}
	if err := DecodeYAML(nil, &c); err != nil {
		t.Errorf("empty document: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1048576", "64KiB", "1.5MiB", "-1", "9223372036854775807", "100Mbit/s", "20 Mbit/s", "12.5MB/s", "unlimited"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSizeCap(s); err == nil && n < 0 {
			t.Fatalf("ParseSizeCap(%q) = %d", s, n)
		}
		if n, err := ParseRateCap(s); err == nil && n < 0 {
			t.Fatalf("ParseRateCap(%q) = %d", s, n)
		}
	})
}
