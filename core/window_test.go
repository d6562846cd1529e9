package core

import (
	"fmt"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin for the DST cases, whatever the host has
)

func TestParseWindow(t *testing.T) {
	t.Parallel()
	days := func(ds ...time.Weekday) (out [7]bool) {
		for _, d := range ds {
			out[d] = true
		}
		return out
	}
	good := []struct {
		spec       string
		days       [7]bool
		start, end int
		always     bool
	}{
		{"", [7]bool{}, 0, 0, true},
		{"   ", [7]bool{}, 0, 0, true},
		{"Sat 02:00-04:00", days(time.Saturday), 120, 240, false},
		{"Mon,Wed 22:00-02:00", days(time.Monday, time.Wednesday), 22 * 60, 120, false},
		{"02:00-04:00", [7]bool{}, 120, 240, false},
		{"sat 02:00-04:00", days(time.Saturday), 120, 240, false},
		{"SUN,mon,Tue 00:00-23:59", days(time.Sunday, time.Monday, time.Tuesday), 0, 23*60 + 59, false},
		{"  Fri   23:30-00:15  ", days(time.Friday), 23*60 + 30, 15, false},
		{"Mon,Mon 01:00-02:00", days(time.Monday), 60, 120, false},
	}
	for _, tt := range good {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			w, err := ParseWindow(tt.spec)
			if err != nil {
				t.Fatalf("ParseWindow(%q): %v", tt.spec, err)
			}
			if w.Days != tt.days || w.Start != tt.start || w.End != tt.end || w.Always() != tt.always {
				t.Errorf("ParseWindow(%q) = %+v", tt.spec, w)
			}
		})
	}
	bad := []struct{ spec, msg string }{
		{"Xyz 01:00-02:00", `unknown day "Xyz"`},
		{"Saturday 01:00-02:00", `unknown day "Saturday"`},
		{"Sat,,Sun 01:00-02:00", `unknown day ""`},
		{"Sa 01:00-02:00", `unknown day "Sa"`},
		{"25:00-26:00", `"25:00"`},
		{"24:00-01:00", `"24:00"`},
		{"01:60-02:00", `"01:60"`},
		{"01:00-02:99", `"02:99"`},
		{"01:00", "HH:MM-HH:MM"},
		{"01:00-01:00", "start equals end"},
		{"Sat", "HH:MM-HH:MM"},
		{"Sat Sun 01:00-02:00", "[DAYS]"},
		{"1:00-2:00", `"1:00"`},
		{"01:00-", `""`},
		{"-01:00", `""`},
		{"01:00-02:00-03:00", `"02:00-03:00"`},
		{"0100-0200", `"0100"`},
		{"aa:bb-cc:dd", `"aa:bb"`},
	}
	for _, tt := range bad {
		t.Run(tt.spec, func(t *testing.T) {
			t.Parallel()
			_, err := ParseWindow(tt.spec)
			checkErr(t, err, ErrBadWindow, fmt.Sprintf("%q", tt.spec), tt.msg)
		})
	}
}

// at returns the time on the given day of March 2026 (the 14th is a
// Saturday) at hh:mm, in UTC.
func at(day, hh, mm int) time.Time { return time.Date(2026, time.March, day, hh, mm, 0, 0, time.UTC) }

func mustWindow(t testing.TB, spec string) Window {
	t.Helper()
	w, err := ParseWindow(spec)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWindowContains(t *testing.T) {
	t.Parallel()
	// March 2026: 13 Fri, 14 Sat, 15 Sun, 16 Mon, 17 Tue, 18 Wed, 19 Thu, 20 Fri.
	tests := []struct {
		spec string
		t    time.Time
		want bool
	}{
		{"", at(14, 12, 0), true},
		{"Sat 02:00-04:00", at(14, 1, 59), false},
		{"Sat 02:00-04:00", at(14, 2, 0), true},
		{"Sat 02:00-04:00", at(14, 3, 59), true},
		{"Sat 02:00-04:00", at(14, 4, 0), false},
		{"Sat 02:00-04:00", at(15, 3, 0), false},
		{"Sat 02:00-04:00", at(13, 3, 0), false},
		{"Sat 02:00-04:00", at(21, 3, 0), true},
		{"Mon,Wed 22:00-02:00", at(16, 21, 59), false},
		{"Mon,Wed 22:00-02:00", at(16, 22, 0), true},
		{"Mon,Wed 22:00-02:00", at(16, 23, 59), true},
		{"Mon,Wed 22:00-02:00", at(17, 0, 0), true},    // Tuesday, from Monday
		{"Mon,Wed 22:00-02:00", at(17, 1, 59), true},   // Tuesday, from Monday
		{"Mon,Wed 22:00-02:00", at(17, 2, 0), false},   // closed
		{"Mon,Wed 22:00-02:00", at(17, 22, 30), false}, // Tuesday's own night: no
		{"Mon,Wed 22:00-02:00", at(18, 23, 0), true},
		{"Mon,Wed 22:00-02:00", at(19, 1, 0), true}, // Thursday, from Wednesday
		{"Mon,Wed 22:00-02:00", at(19, 23, 0), false},
		{"Mon,Wed 22:00-02:00", at(20, 1, 0), false},
		{"Mon,Wed 22:00-02:00", at(16, 1, 0), false}, // Monday morning belongs to Sunday
		{"Sat 22:00-02:00", at(15, 1, 0), true},      // Sunday, from Saturday: week wraps
		{"Sun 22:00-02:00", at(16, 1, 30), true},     // Monday, from Sunday
		{"Sun 22:00-02:00", at(14, 23, 0), false},
		{"02:00-04:00", at(17, 3, 0), true},
		{"02:00-04:00", at(19, 4, 0), false},
		{"23:00-01:00", at(1, 0, 30), true}, // a month boundary, every day
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s", tt.spec, tt.t.Format("Mon 15:04")), func(t *testing.T) {
			t.Parallel()
			if got := mustWindow(t, tt.spec).Contains(tt.t); got != tt.want {
				t.Errorf("%q.Contains(%s) = %v, want %v", tt.spec, tt.t.Format(time.RFC1123), got, tt.want)
			}
		})
	}
}

func TestWindowNextOpen(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	inBerlin := func(y int, mo time.Month, d, hh, mm int) time.Time {
		return time.Date(y, mo, d, hh, mm, 0, 0, berlin)
	}
	tests := []struct {
		name string
		spec string
		t    time.Time
		want time.Time
	}{
		{"always", "", at(14, 12, 34), at(14, 12, 34)},
		{"inside", "Sat 02:00-04:00", at(14, 3, 0), at(14, 3, 0)},
		{"later the same day", "Sat 02:00-04:00", at(14, 1, 0), at(14, 2, 0)},
		{"seconds before", "Sat 02:00-04:00", at(14, 1, 59).Add(30 * time.Second), at(14, 2, 0)},
		{"just closed: next week", "Sat 02:00-04:00", at(14, 4, 0), at(21, 2, 0)},
		{"the day after", "Sat 02:00-04:00", at(15, 3, 0), at(21, 2, 0)},
		{"the day before", "Sat 02:00-04:00", at(13, 23, 59), at(14, 2, 0)},
		{"inside, after midnight", "Mon,Wed 22:00-02:00", at(17, 1, 0), at(17, 1, 0)},
		{"next listed day", "Mon,Wed 22:00-02:00", at(17, 3, 0), at(18, 22, 0)},
		{"wraps to next week", "Mon,Wed 22:00-02:00", at(19, 3, 0), at(23, 22, 0)},
		{"daily, tomorrow", "02:00-04:00", at(14, 5, 0), at(15, 2, 0)},
		{"daily, over new year", "02:00-04:00", time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 2, 0, 0, 0, time.UTC)},
		{"over a month end", "Sun 01:00-02:00", at(28, 23, 0), at(29, 1, 0)},
		{"zone kept", "Sat 02:00-04:00", inBerlin(2026, 3, 14, 1, 0), inBerlin(2026, 3, 14, 2, 0)},
		// 29 March 2026: Berlin skips 02:00-03:00; 25 October repeats it.
		{"DST starts that night", "Sun 04:00-06:00", inBerlin(2026, 3, 29, 0, 30), inBerlin(2026, 3, 29, 4, 0)},
		{"DST ends that night", "Sun 04:00-06:00", inBerlin(2026, 10, 25, 0, 30), inBerlin(2026, 10, 25, 4, 0)},
		{"the day after DST starts", "02:00-03:00", inBerlin(2026, 3, 29, 12, 0), inBerlin(2026, 3, 30, 2, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := mustWindow(t, tt.spec)
			got := w.NextOpen(tt.t)
			if !got.Equal(tt.want) {
				t.Errorf("%q.NextOpen(%s) = %s, want %s", tt.spec, tt.t, got, tt.want)
			}
			if !w.Contains(got) {
				t.Errorf("%q.NextOpen(%s) = %s, outside the window", tt.spec, tt.t, got)
			}
		})
	}
}

// TestWindowNextOpenIsFirst walks two weeks minute by minute and checks that
// NextOpen never skips an open minute and always lands inside the window.
func TestWindowNextOpenIsFirst(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{"Sat 02:00-04:00", "Mon,Wed 22:00-02:00", "02:00-04:00", "Sun 23:59-00:01", "Fri,Sat,Sun 04:00-06:00"} {
		for _, start := range []time.Time{at(10, 0, 0), time.Date(2026, 3, 23, 0, 0, 0, 0, berlin), time.Date(2026, 10, 19, 0, 0, 0, 0, berlin)} {
			t.Run(spec+"/"+start.Format("2006-01-02 MST"), func(t *testing.T) {
				t.Parallel()
				w := mustWindow(t, spec)
				end := start.Add(14 * 24 * time.Hour)
				for from := start; from.Before(end); from = from.Add(97 * time.Minute) {
					next := w.NextOpen(from)
					if next.Before(from) || !w.Contains(next) {
						t.Fatalf("NextOpen(%s) = %s", from, next)
					}
					for m := from; m.Before(next); m = m.Add(time.Minute) {
						if w.Contains(m) {
							t.Fatalf("NextOpen(%s) = %s, but %s is open already", from, next, m)
						}
					}
				}
			})
		}
	}
}
