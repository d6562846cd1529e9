package simulations

import (
	"math"
	"testing"
)

func uniformSite(w float64, n int, d, u float64) SiteBound {
	s := SiteBound{W: w}
	for range n {
		s.Down = append(s.Down, d)
		s.Up = append(s.Up, u)
	}
	return s
}

func TestTStar(t *testing.T) {
	t.Parallel()
	const S = 100.0
	tests := []struct {
		name string
		b    Bound
		want float64
	}{
		{"origin bound", Bound{S: S, U: 10, Sites: []SiteBound{uniformSite(100, 2, 100, 100)}}, 10},
		{"WAN bound", Bound{S: S, U: 1000, Sites: []SiteBound{uniformSite(100, 2, 1000, 1000), uniformSite(20, 2, 1000, 1000)}}, 5},
		{"slowest node", Bound{S: S, U: 1000, Sites: []SiteBound{{W: 1000, Down: []float64{1000, 4}, Up: []float64{1000, 1000}}}}, 25},
		// 10 nodes, W 10, u 1 each: 10·100/(10+10) = 50 beats S/W = 10.
		{"site upload bound", Bound{S: S, U: 1000, Sites: []SiteBound{uniformSite(10, 10, 1000, 1)}}, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.b.TStar(); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("T* = %v, want %v", got, tt.want)
			}
		})
	}
}

// bench-4x8's bound is its WAN: 32 MiB over 20 Mbit/s.
func TestBench4x8Bound(t *testing.T) {
	t.Parallel()
	sc, err := LoadScenario("scenarios/bench-4x8.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := float64(32<<20) / 2.5e6
	if got := bound(sc).TStar(); math.Abs(got-want) > 1e-6 {
		t.Errorf("T* %v, want %v", got, want)
	}
}
