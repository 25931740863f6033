package webhook_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/outlookd/outlookd/webhook"
)

// FuzzParse feeds arbitrary bodies to the notification parser: it must
// never panic, and whatever it accepts must be a value array that
// survives a round trip.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"value":[{"subscriptionId":"s","clientState":"c","changeType":"created"}]}`,
		`{"value":[{"subscriptionId":"s","clientState":"c","lifecycleEvent":"missed"}]}`,
		`{"value":[]}`, `{"value":null}`, `{}`, `[]`, `{"value":[1]}`, `{"value":[]} x`, ``, `{"value":[{"subscriptionId":7}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := webhook.Parse(bytes.NewReader(body))
		if err != nil {
			return
		}
		out, err := json.Marshal(map[string]any{"value": items})
		if err != nil {
			t.Fatalf("accepted items do not marshal: %v", err)
		}
		again, err := webhook.Parse(bytes.NewReader(out))
		if err != nil || len(again) != len(items) {
			t.Fatalf("round trip: %d items, then %d (%v)", len(items), len(again), err)
		}
	})
}
