package install

import (
	"bytes"
	"strings"
	"sync"
	"testing"
)

func TestTail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		size   int
		writes []string
		want   string
	}{
		{"empty", 4, nil, ""},
		{"under size", 8, []string{"ab", "cd"}, "abcd"},
		{"exactly size", 4, []string{"ab", "cd"}, "abcd"},
		{"wraps", 5, []string{"ab", "cd", "efg"}, "cdefg"},
		{"wraps many times", 3, []string{"a", "b", "c", "d", "e", "f", "g"}, "efg"},
		{"one big write", 3, []string{"abcdefgh"}, "fgh"},
		{"big write after wrap", 3, []string{"ab", "cd", "wxyz"}, "xyz"},
		{"write fills to the end", 4, []string{"a", "bcd", "e"}, "bcde"},
		{"empty writes", 3, []string{"", "ab", ""}, "ab"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tl := NewTail(tc.size)
			for _, w := range tc.writes {
				if n, err := tl.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := string(tl.Bytes()); got != tc.want {
				t.Errorf("Bytes() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTailZeroValue(t *testing.T) {
	t.Parallel()
	var tl Tail
	big := strings.Repeat("x", DefaultTailBytes) + "end"
	tl.Write([]byte(big))
	got := tl.Bytes()
	if len(got) != DefaultTailBytes || !bytes.HasSuffix(got, []byte("xend")) {
		t.Errorf("zero Tail kept %d bytes ending %q", len(got), got[max(0, len(got)-4):])
	}
}

func TestTailConcurrent(t *testing.T) {
	t.Parallel()
	tl := NewTail(1000)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			line := bytes.Repeat([]byte{'a' + byte(i)}, 10)
			for range 500 {
				tl.Write(line)
				_ = tl.Bytes()
			}
		})
	}
	wg.Wait()
	got := tl.Bytes()
	if len(got) != 1000 {
		t.Fatalf("kept %d bytes, want 1000", len(got))
	}
	// Writes are atomic: every aligned 10-byte run is one writer's.
	for i := 0; i < len(got); i += 10 {
		if chunk := got[i : i+10]; !bytes.Equal(chunk, bytes.Repeat(chunk[:1], 10)) {
			t.Fatalf("interleaved write at %d: %q", i, chunk)
		}
	}
}
