package benchfig

import (
	"bytes"
	"math"
	"testing"
	"time"
)

func TestFigures(t *testing.T) {
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"median of odd count", Median([]float64{3, 1, 2}), 2},
		{"median of even count is the upper middle", Median([]float64{4, 1, 3, 2}), 3},
		{"p50", Percentile([]float64{1, 2, 3, 4, 5}, 0.5), 3},
		{"p99 of 100 values", Percentile(seq(100), 0.99), 99},
		{"p100 is the maximum", Percentile(seq(10), 1), 10},
		{"round to 2 places", Round(0.8749, 2), 0.87},
		{"round half up", Round(1.25, 1), 1.3},
		{"round to whole", Round(171.6, 0), 172},
		{"millis", Millis([]time.Duration{1500 * time.Microsecond, time.Millisecond})[1], 1.5},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Percentile(nil, 0.5)) {
		t.Error("no values must give NaN, not a figure")
	}
	xs := []float64{3, 1, 2}
	Median(xs)
	if xs[0] != 3 {
		t.Error("Median reordered its argument")
	}
}

func TestFprint(t *testing.T) {
	tests := []struct {
		figures map[string]any
		want    string
	}{
		{map[string]any{"ratio": 0.95, "msgs_per_s": 173.2}, `{"bench":"x","msgs_per_s":173.2,"ratio":0.95}` + "\n"},
		{nil, `{"bench":"x"}` + "\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := Fprint(&b, "x", tt.figures); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("got %q, want %q", b.String(), tt.want)
		}
	}
	if err := Fprint(&bytes.Buffer{}, "x", map[string]any{"bad": math.Inf(1)}); err == nil {
		t.Error("a figure JSON cannot hold was printed")
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}
