package core

import "pault.ag/go/debian/version"

// CompareVersions orders two package versions the way dpkg does (1.10 is
// newer than 1.9, 1.0~rc1 older than 1.0, an epoch "2:" beats anything
// without one) and returns -1, 0 or +1. A version that is not a valid
// Debian version (say "v2_beta") is compared as a plain upstream string
// with dpkg's rules, so any two versions have an order.
func CompareVersions(a, b string) int {
	c := version.Compare(parseVersion(a), parseVersion(b))
	switch {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func parseVersion(s string) version.Version {
	v, err := version.Parse(s)
	if err != nil {
		return version.Version{Version: s}
	}
	return v
}
