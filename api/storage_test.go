package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// The storage policy holds: bodies stored, then none (bodies and
// previews deleted, attachments not streamed), then metadata (the
// attachments' metadata deleted too); the backfill showed every folder
// with Graph's total.
func TestStoragePolicyHolds(t *testing.T) {
	h := newHarness(t, graphsim.Options{})
	ctx := context.Background()
	e := h.e
	if _, err := e.Ctl.Generate(ctx, e.Ada.UPN, graphsim.GenerateSpec{Count: 60, Days: 10, Folders: []string{"inbox"}, Seed: 7, AttachmentShare: 0.5}); err != nil {
		t.Fatal(err)
	}
	r := h.call(t, "POST", "/v1/connections", h.acme, "u-ada", map[string]any{
		"folders": []string{"inbox"}, "login_hint": e.Ada.UPN, "storage": map[string]string{"bodies": "store"},
	})
	var c conn
	r.json(t, &c)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	h.consent(t, c.AuthorizeURL)
	h.waitConn(t, c.ID, h.acme, "u-ada", "backfill done", func(c conn) bool {
		return c.State == workflows.StateActive && c.Backfill != nil && c.Backfill.CompletedAt != nil
	})
	var v struct {
		Backfill struct {
			Folders []struct {
				Fetched int64   `json:"fetched"`
				Total   int64   `json:"total"`
				Percent float64 `json:"percent"`
				Done    bool    `json:"done"`
			} `json:"folders"`
		} `json:"backfill"`
	}
	h.call(t, "GET", "/v1/connections/"+c.ID, h.acme, "u-ada", nil).json(t, &v)
	if len(v.Backfill.Folders) != 1 || v.Backfill.Folders[0].Total != 60 || v.Backfill.Folders[0].Percent != 100 || !v.Backfill.Folders[0].Done {
		t.Errorf("backfill progress %+v", v.Backfill)
	}
	content := func() (bodies, previews, attachments int) {
		msgs, err := e.Store.Messages(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Body != nil {
				bodies++
			}
			if m.BodyPreview != "" {
				previews++
			}
			attachments += len(m.Attachments)
		}
		return
	}
	b, p, a := content()
	if b != 60 || p != 60 || a == 0 {
		t.Fatalf("stored with bodies=store: %d bodies, %d previews, %d attachments", b, p, a)
	}
	withAttachment := ""
	msgs, _ := e.Store.Messages(ctx, c.ID)
	for _, m := range msgs {
		if len(m.Attachments) > 0 {
			withAttachment = m.ID + "/attachments/" + m.Attachments[0].ID
			break
		}
	}
	wait := func(what string, cond func(b, p, a int) bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if cond(content()) {
				return
			}
			if time.Now().After(deadline) {
				b, p, a := content()
				t.Fatalf("%s: never; %d bodies, %d previews, %d attachments", what, b, p, a)
			}
		}
	}
	if r := h.call(t, "PATCH", "/v1/connections/"+c.ID+"/settings", h.acme, "u-ada", map[string]any{"storage": map[string]string{"bodies": "none"}}); r.status != 200 {
		t.Fatalf("bodies none: %d %s", r.status, r.body)
	}
	wait("bodies and previews deleted", func(b, p, a int) bool { return b == 0 && p == 0 && a > 0 })
	if r := h.call(t, "GET", "/v1/connections/"+c.ID+"/messages/"+withAttachment, h.acme, "u-ada", nil); r.status != 409 || r.code() != "content_not_kept" {
		t.Errorf("an attachment with bodies=none: %d %s", r.status, r.body)
	}
	// New mail keeps to the policy.
	if _, err := e.Ctl.InjectMessages(ctx, e.Ada.UPN, graphsim.MessageSpec{Subject: "after none", Body: "<p>not to be kept</p>"}); err != nil {
		t.Fatal(err)
	}
	wait("new mail arrived without content", func(b, p, a int) bool {
		n, _ := e.Store.CountMessages(ctx, c.ID)
		return n == 61 && b == 0 && p == 0
	})
	if r := h.call(t, "PATCH", "/v1/connections/"+c.ID+"/settings", h.acme, "u-ada", map[string]any{"storage": map[string]string{"bodies": "metadata"}}); r.status != 200 {
		t.Fatalf("bodies metadata: %d %s", r.status, r.body)
	}
	wait("attachments' metadata deleted", func(b, p, a int) bool { return b == 0 && p == 0 && a == 0 })
	if r := h.call(t, "PATCH", "/v1/connections/"+c.ID+"/settings", h.acme, "u-ada", map[string]any{"storage": map[string]string{"bodies": "sometimes"}}); r.status != 422 {
		t.Errorf("an unknown policy: %d %s", r.status, r.body)
	}
}
