package simulations

// Bound holds the inputs of DESIGN.md's lower bound: package size S and,
// in bytes/s, the coordinator's uplink U and per site its WAN downlink
// W_k and each node's download d and upload u.
type Bound struct {
	S float64
	U float64
	// Sites: W is the site's WAN downlink, Down and Up its nodes' rates.
	Sites []SiteBound
}

// SiteBound is one site's part of a Bound.
type SiteBound struct {
	W        float64
	Down, Up []float64
}

// TStar is the lower bound on the time for every node to hold the
// package (Kumar & Ross 2006, extended to sites):
//
//	T* = max( S/U, max_k S/W_k, S/d, max_k n_k·S/(W_k + n_k·u) )
//
// with heterogeneous nodes S/d is taken at the slowest downlink and n_k·u
// is the sum of site k's uplinks.
func (b Bound) TStar() float64 {
	t := b.S / b.U
	for _, s := range b.Sites {
		t = max(t, b.S/s.W)
		for _, d := range s.Down {
			t = max(t, b.S/d)
		}
		var up float64
		for _, u := range s.Up {
			up += u
		}
		t = max(t, float64(len(s.Down))*b.S/(s.W+up))
	}
	return t
}
