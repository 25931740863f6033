package outbox

import (
	"testing"
	"time"
)

// TestSignVector checks the signature against the example of the Standard
// Webhooks specification.
func TestSignVector(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("signature %s, want %s", got, want)
	}
	if _, err := Sign("whsec_!!", "id", time.Now(), nil); err == nil {
		t.Error("a malformed secret was accepted")
	}
}

func TestBackoff(t *testing.T) {
	var total time.Duration
	for n := 1; n <= 34; n++ {
		d := Backoff(n)
		if d < 5*time.Second || d > time.Hour+6*time.Minute {
			t.Errorf("backoff %d = %s", n, d)
		}
		total += d
	}
	if total < 24*time.Hour || total > 40*time.Hour {
		t.Errorf("34 attempts span %s; want about a day", total)
	}
}
