package driver

import (
	"fmt"
	"time"

	"github.com/unshim/unshim/pkg/apis/unshim/v1alpha1"
)

// InWindow tells whether a wave may start at now: always with no windows,
// otherwise when now falls in one of them. A window whose end is before its
// start runs past midnight; its days are the days it opens on.
func InWindow(ws []v1alpha1.Window, now time.Time) (bool, error) {
	if len(ws) == 0 {
		return true, nil
	}
	for i, w := range ws {
		in, err := inWindow(w, now)
		if err != nil {
			return false, fmt.Errorf("spec.windows[%d]: %w", i, err)
		}
		if in {
			return true, nil
		}
	}
	return false, nil
}

func inWindow(w v1alpha1.Window, now time.Time) (bool, error) {
	loc := time.UTC
	if w.TimeZone != "" {
		l, err := time.LoadLocation(w.TimeZone)
		if err != nil {
			return false, err
		}
		loc = l
	}
	start, err := minuteOfDay(w.Start)
	if err != nil {
		return false, err
	}
	end, err := minuteOfDay(w.End)
	if err != nil {
		return false, err
	}
	t := now.In(loc)
	m := t.Hour()*60 + t.Minute()
	opensOn := func(d time.Weekday) bool {
		if len(w.Days) == 0 {
			return true
		}
		for _, wd := range w.Days {
			if string(wd) == d.String() {
				return true
			}
		}
		return false
	}
	switch {
	case start == end: // a whole day
		return opensOn(t.Weekday()), nil
	case start < end:
		return m >= start && m < end && opensOn(t.Weekday()), nil
	default: // past midnight: open late today, or early on the day after an opening day
		if m >= start {
			return opensOn(t.Weekday()), nil
		}
		return m < end && opensOn((t.Weekday()+6)%7), nil
	}
}

func minuteOfDay(hm string) (int, error) {
	var h, m int
	if _, err := fmt.Sscanf(hm, "%2d:%2d", &h, &m); err != nil || h < 0 || h > 23 || m < 0 || m > 59 || len(hm) != 5 {
		return 0, fmt.Errorf("time %q: want HH:MM", hm)
	}
	return h*60 + m, nil
}
