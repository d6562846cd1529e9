package core

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a weekly maintenance window such as "Sat 02:00-04:00",
// "Mon,Wed 22:00-02:00" (crossing midnight) or "02:00-04:00" (every day).
// It is read in the node's local time, as an admin scheduling a branch
// office means that office's night. The empty window means "any time".
type Window struct {
	Days       [7]bool // by time.Weekday; all false means every day
	Start, End int     // minutes after midnight; End <= Start crosses midnight
	set        bool
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// ParseWindow parses a window specification; "" is the always-open window.
func ParseWindow(s string) (Window, error) {
	var w Window
	s = strings.TrimSpace(s)
	if s == "" {
		return w, nil
	}
	bad := func(why string) error {
		return fmt.Errorf("%w: %q: %s (example: \"Sat 02:00-04:00\")", ErrBadWindow, s, why)
	}
	fields := strings.Fields(s)
	var span string
	switch len(fields) {
	case 1:
		span = fields[0]
	case 2:
		span = fields[1]
		for _, d := range strings.Split(fields[0], ",") {
			wd, ok := dayNames[strings.ToLower(d)]
			if !ok || len(d) != 3 {
				return w, bad("unknown day " + strconv.Quote(d))
			}
			w.Days[wd] = true
		}
	default:
		return w, bad("want [DAYS] HH:MM-HH:MM")
	}
	from, to, ok := strings.Cut(span, "-")
	if !ok {
		return w, bad("want HH:MM-HH:MM")
	}
	var err error
	if w.Start, err = parseClock(from); err != nil {
		return w, bad(err.Error())
	}
	if w.End, err = parseClock(to); err != nil {
		return w, bad(err.Error())
	}
	if w.Start == w.End {
		return w, bad("start equals end")
	}
	w.set = true
	return w, nil
}

func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("time %q: want HH:MM between 00:00 and 23:59", s)
	}
	return hh*60 + mm, nil
}

// Always reports whether the window is open all the time.
func (w Window) Always() bool { return !w.set }

func (w Window) dayOK(d time.Weekday) bool {
	for _, on := range w.Days {
		if on {
			return w.Days[d]
		}
	}
	return true
}

// Contains reports whether t (in its own location) is inside the window.
// A window crossing midnight belongs to the day it starts on.
func (w Window) Contains(t time.Time) bool {
	if !w.set {
		return true
	}
	min := t.Hour()*60 + t.Minute()
	if w.Start < w.End {
		return min >= w.Start && min < w.End && w.dayOK(t.Weekday())
	}
	if min >= w.Start {
		return w.dayOK(t.Weekday())
	}
	if min < w.End {
		return w.dayOK((t.Weekday() + 6) % 7)
	}
	return false
}

// NextOpen returns t if the window contains t, else the next time it opens.
func (w Window) NextOpen(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	for i := range 8 {
		d := day.AddDate(0, 0, i)
		open := d.Add(time.Duration(w.Start) * time.Minute)
		if open.Hour()*60+open.Minute() != w.Start { // a DST change before the start
			open = time.Date(d.Year(), d.Month(), d.Day(), w.Start/60, w.Start%60, 0, 0, t.Location())
		}
		if open.After(t) && w.dayOK(d.Weekday()) {
			return open
		}
	}
	return t // unreachable for a valid window
}
