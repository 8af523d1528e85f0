package main

import (
	"fmt"
	"time"
)

// appendTimeField renders one @ field of an -F format: strftime(3)'s
// conversion of the same letter in the C locale, plus mosquitto_sub's @N
// (nanoseconds within the second). A letter strftime does not know is
// printed back as %letter, as glibc does.
func appendTimeField(dst []byte, c byte, t time.Time) []byte {
	switch c {
	case 'N':
		return fmt.Appendf(dst, "%09d", t.Nanosecond())
	case 'a':
		return append(dst, t.Weekday().String()[:3]...)
	case 'A':
		return append(dst, t.Weekday().String()...)
	case 'b', 'h':
		return append(dst, t.Month().String()[:3]...)
	case 'B':
		return append(dst, t.Month().String()...)
	case 'c':
		return appendTimeLayout(dst, "%a %b %e %H:%M:%S %Y", t)
	case 'C':
		return fmt.Appendf(dst, "%02d", t.Year()/100)
	case 'd':
		return fmt.Appendf(dst, "%02d", t.Day())
	case 'D', 'x':
		return appendTimeLayout(dst, "%m/%d/%y", t)
	case 'e':
		return fmt.Appendf(dst, "%2d", t.Day())
	case 'F':
		return appendTimeLayout(dst, "%Y-%m-%d", t)
	case 'G':
		year, _ := t.ISOWeek()
		return fmt.Appendf(dst, "%d", year)
	case 'g':
		year, _ := t.ISOWeek()
		return fmt.Appendf(dst, "%02d", year%100)
	case 'H':
		return fmt.Appendf(dst, "%02d", t.Hour())
	case 'I':
		return fmt.Appendf(dst, "%02d", hour12(t))
	case 'j':
		return fmt.Appendf(dst, "%03d", t.YearDay())
	case 'k':
		return fmt.Appendf(dst, "%2d", t.Hour())
	case 'l':
		return fmt.Appendf(dst, "%2d", hour12(t))
	case 'm':
		return fmt.Appendf(dst, "%02d", int(t.Month()))
	case 'M':
		return fmt.Appendf(dst, "%02d", t.Minute())
	case 'n':
		return append(dst, '\n')
	case 'p':
		if t.Hour() < 12 {
			return append(dst, "AM"...)
		}
		return append(dst, "PM"...)
	case 'P':
		if t.Hour() < 12 {
			return append(dst, "am"...)
		}
		return append(dst, "pm"...)
	case 'r':
		return appendTimeLayout(dst, "%I:%M:%S %p", t)
	case 'R':
		return appendTimeLayout(dst, "%H:%M", t)
	case 's':
		return fmt.Appendf(dst, "%d", t.Unix())
	case 'S':
		return fmt.Appendf(dst, "%02d", t.Second())
	case 't':
		return append(dst, '\t')
	case 'T', 'X':
		return appendTimeLayout(dst, "%H:%M:%S", t)
	case 'u':
		return fmt.Appendf(dst, "%d", (int(t.Weekday())+6)%7+1)
	case 'U':
		return fmt.Appendf(dst, "%02d", (t.YearDay()+6-int(t.Weekday()))/7)
	case 'V':
		_, week := t.ISOWeek()
		return fmt.Appendf(dst, "%02d", week)
	case 'w':
		return fmt.Appendf(dst, "%d", int(t.Weekday()))
	case 'W':
		return fmt.Appendf(dst, "%02d", (t.YearDay()+6-(int(t.Weekday())+6)%7)/7)
	case 'y':
		return fmt.Appendf(dst, "%02d", t.Year()%100)
	case 'Y':
		return fmt.Appendf(dst, "%d", t.Year())
	case 'z':
		return append(dst, t.Format("-0700")...)
	case 'Z':
		name, _ := t.Zone()
		return append(dst, name...)
	case '%':
		return append(dst, '%')
	}
	return append(dst, '%', c)
}

// appendTimeLayout renders a strftime layout of %-conversions and literal
// text; it serves the composite conversions and %I.
func appendTimeLayout(dst []byte, layout string, t time.Time) []byte {
	for i := 0; i < len(layout); i++ {
		if layout[i] == '%' && i+1 < len(layout) {
			i++
			dst = appendTimeField(dst, layout[i], t)
			continue
		}
		dst = append(dst, layout[i])
	}
	return dst
}

func hour12(t time.Time) int {
	h := t.Hour() % 12
	if h == 0 {
		return 12
	}
	return h
}
