// Package benchfig computes and prints the figures of outlookd's
// benchmarks: medians over repeated runs, percentiles, rounding, and the
// one JSON line each benchmark prints, {"bench":"<name>",...}.
package benchfig

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"time"
)

// Median is the middle value of xs (the upper middle for an even count);
// xs is not reordered.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// Percentile is the p-th (0 to 1) value of sorted, by nearest rank below.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

// Millis converts durations to milliseconds, sorted, for Percentile.
func Millis(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d.Microseconds()) / 1000
	}
	slices.Sort(out)
	return out
}

// Round rounds f to the given number of decimal places.
func Round(f float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(f*p) / p
}

// Fprint writes a benchmark's line: "bench" first, then the figures in
// key order.
func Fprint(w io.Writer, name string, figures map[string]any) error {
	h := map[string]string{"bench": name}
	// The stack it ran on, when the driver says (make bench STACK_PROFILE=...).
	if p := os.Getenv("OUTLOOKD_STACK_PROFILE"); p != "" {
		h["profile"] = p
	}
	head, err := json.Marshal(h)
	if err != nil {
		return err
	}
	line := head
	if len(figures) > 0 {
		rest, err := json.Marshal(figures)
		if err != nil {
			return fmt.Errorf("benchfig: %s: %w", name, err)
		}
		line = append(append(head[:len(head)-1:len(head)-1], ','), rest[1:]...)
	}
	_, err = fmt.Fprintln(w, string(line))
	return err
}
