package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPlaceSend(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := Rates{Mailbox: "m", PerMinute: 30, DailyRecipients: 100}
	minute := time.Minute + SlotGuard
	every := func(name string, n int, from time.Time, step time.Duration, recipients int, taken bool) []slot {
		out := make([]slot, n)
		for i := range out {
			out[i] = slot{sendID: fmt.Sprintf("%s%03d", name, i), at: from.Add(time.Duration(i) * step), recipients: recipients, taken: taken}
		}
		return out
	}
	join := func(lists ...[]slot) []slot {
		var out []slot
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	own := func(id string, at time.Time, taken bool) *slot {
		return &slot{sendID: id, at: at, recipients: 1, taken: taken}
	}
	for _, tc := range []struct {
		name  string
		slots []slot
		own   *slot
		n     int
		want  time.Time
	}{
		{"an idle mailbox sends now", nil, nil, 1, now},
		{"29 taken in the last minute: now", every("t", 29, now.Add(-50*time.Second), time.Second, 1, true), nil, 1, now},
		{"30 taken in the last minute: a minute after the first of them", every("t", 30, now.Add(-50*time.Second), time.Second, 1, true), nil, 1, now.Add(-50*time.Second + minute)},
		{"30 booked ahead: a minute after the first of them", every("b", 30, now.Add(5*time.Second), 2*time.Second, 1, false), nil, 1, now.Add(5*time.Second + minute)},
		{"a booking whose turn came goes now", every("b", 1, now.Add(-time.Second), 0, 1, false), own("b000", now.Add(-time.Second), false), 1, now},
		{"bookings behind it do not hold it back",
			join(every("a", 20, now.Add(-10*time.Second), 0, 1, true), every("c", 20, now, 0, 1, false)), own("b", now, false), 1, now},
		{"bookings ahead of it that came late are placed first",
			join(every("a", 20, now.Add(-10*time.Second), 0, 1, true), every("a", 10, now.Add(-5*time.Second), 0, 1, false)), own("b", now, false), 1, now.Add(-10*time.Second + minute)},
		{"a booking long past its time is not waited for",
			join(every("a", 29, now.Add(-10*time.Second), 0, 1, true), every("a", 5, now.Add(-time.Hour), 0, 1, false)), own("b", now, false), 1, now},
		{"a slot taken before is taken again, ahead of every booking",
			join(every("a", 29, now.Add(-10*time.Second), 0, 1, true), every("c", 5, now.Add(-time.Second), 0, 1, false), []slot{{sendID: "b", at: now.Add(-40 * time.Second), recipients: 1, taken: true}}),
			own("b", now.Add(-40*time.Second), true), 1, now},
		{"its own slot is never counted twice",
			join(every("a", 29, now.Add(-10*time.Second), 0, 1, true), []slot{{sendID: "b", at: now.Add(-time.Second), recipients: 1, taken: true}}),
			own("b", now.Add(-time.Second), true), 1, now},
		{"a full day: when the oldest leaves the day", every("t", 10, now.Add(-20*time.Hour), time.Hour/10, 10, true), nil, 5, now.Add(4 * time.Hour)},
		{"a full day, a larger message: two must leave", every("t", 10, now.Add(-20*time.Hour), time.Hour/10, 10, true), nil, 15, now.Add(4*time.Hour + time.Hour/10)},
		{"a day full with bookings", join(every("t", 5, now.Add(-20*time.Hour), time.Hour/10, 10, true), every("b", 5, now, 0, 10, false)), nil, 5, now.Add(4 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := placeSend(now, tc.slots, tc.own, tc.n, r)
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("slot at %v (%v), want %v", got.Sub(now), err, tc.want.Sub(now))
			}
			// Whatever the answer, the slots taken and the new one keep
			// every minute within 30 and the day within its recipients.
			var all []slot
			for _, s := range tc.slots {
				if s.taken && (tc.own == nil || s.sendID != tc.own.sendID) {
					all = append(all, s)
				}
			}
			all = append(all, slot{at: got, recipients: tc.n})
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
	if _, err := placeSend(now, nil, nil, 101, r); !errors.Is(err, ErrOverDailyLimit) {
		t.Errorf("a message over the day's limit: %v", err)
	}
}

// TestPlannerKeepsEveryWindow: a long queue placed one after another
// never puts more than PerMinute in any minute, nor more than the day's
// recipients in any day.
func TestPlannerKeepsEveryWindow(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := Rates{Mailbox: "m", PerMinute: 30, DailyRecipients: 300}
	p := newPlanner(r, nil)
	var at []time.Time
	for i := range 400 {
		got, err := p.place(now, 1+i%3)
		if err != nil {
			t.Fatal(err)
		}
		at = append(at, got)
	}
	for i := range at {
		if i >= 30 && at[i].Sub(at[i-30]) < time.Minute {
			t.Fatalf("placements %d and %d are %v apart", i-30, i, at[i].Sub(at[i-30]))
		}
		sum := 0
		for j := i; j >= 0 && at[i].Sub(at[j]) < 24*time.Hour; j-- {
			sum += 1 + j%3
		}
		if sum > r.DailyRecipients {
			t.Fatalf("%d recipients in the day before placement %d", sum, i)
		}
	}
}
