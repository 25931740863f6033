package store

import (
	"errors"
	"testing"
	"time"
)

func TestSlotTime(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := Rates{Mailbox: "m", PerMinute: 30, DailyRecipients: 100}
	every := func(n int, from time.Time, step time.Duration, recipients int) []slot {
		out := make([]slot, n)
		for i := range out {
			out[i] = slot{at: from.Add(time.Duration(i) * step), recipients: recipients}
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		slots []slot
		n     int
		want  time.Time
	}{
		{"an idle mailbox sends now", nil, 1, now},
		{"29 in the last minute: now", every(29, now.Add(-50*time.Second), time.Second, 1), 1, now},
		{"30 in the last minute: a minute after the first of them", every(30, now.Add(-50*time.Second), time.Second, 1), 1, now.Add(10 * time.Second)},
		{"30 queued ahead: after them, a minute after the 30th last", every(30, now.Add(5*time.Second), 2*time.Second, 1), 1, now.Add(65 * time.Second)},
		{"a full day: when the oldest leaves the day", every(10, now.Add(-20*time.Hour), time.Hour/10, 10), 5, now.Add(4 * time.Hour)},
		{"a full day, a larger message: two must leave", every(10, now.Add(-20*time.Hour), time.Hour/10, 10), 15, now.Add(4*time.Hour + time.Hour/10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := slotTime(now, tc.slots, tc.n, r)
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("slot at %v (%v), want %v", got, err, tc.want)
			}
			// Whatever the answer, no minute holds more than 30 and no day
			// more than the recipients allowed.
			all := append(append([]slot(nil), tc.slots...), slot{at: got, recipients: tc.n})
			for i := range all {
				inMinute, inDay := 0, 0
				for _, s := range all {
					if !s.at.Before(all[i].at) && s.at.Before(all[i].at.Add(time.Minute)) {
						inMinute++
					}
					if !s.at.After(all[i].at) && s.at.After(all[i].at.Add(-24*time.Hour)) {
						inDay += s.recipients
					}
				}
				if inMinute > r.PerMinute || (all[i].at.Equal(got) && inDay > r.DailyRecipients) {
					t.Errorf("at %v: %d in a minute, %d recipients in a day", all[i].at, inMinute, inDay)
				}
			}
		})
	}
	if _, err := slotTime(now, nil, 101, r); !errors.Is(err, ErrOverDailyLimit) {
		t.Errorf("a message over the day's limit: %v", err)
	}
}
