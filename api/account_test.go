package api

import "testing"

// TestAccountOf: what a connection says of its account, by tenant.
func TestAccountOf(t *testing.T) {
	for _, tt := range []struct {
		tenant             string
		kind               string
		perMessage, perDay int
	}{
		{"", "", 0, 0},
		{consumerTenant, "personal", 100, 300},
		{"72f988bf-86f1-41af-91ab-2d7cd011db47", "work_or_school", 500, 10000},
	} {
		a := accountOf(tt.tenant)
		if tt.kind == "" {
			if a != nil {
				t.Errorf("tenant %q: %+v, want none", tt.tenant, a)
			}
			continue
		}
		if a == nil || a.Type != tt.kind || a.Sending.RecipientsPerMessage != tt.perMessage || a.Sending.RecipientsPerDay != tt.perDay || a.Sending.MessagesPerMinute != 30 {
			t.Errorf("tenant %q: %+v", tt.tenant, a)
		}
	}
}
