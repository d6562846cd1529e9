package core

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.9", "1.10", -1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0.1", -1},
		{"1.0-2", "1.0-10", -1},
		{"2:0.1", "1:9.9", 1},
		{"1.0+deb12u1", "1.0", 1},
		{"2.0", "10.0", -1},
		// not valid Debian versions, still ordered
		{"v2_beta", "v10_beta", -1},
		{"build_7", "build_7", 0},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}
