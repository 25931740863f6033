package activities

import (
	"slices"
	"testing"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

func TestContentPolicies(t *testing.T) {
	body := "<p>hi</p>"
	tests := []struct {
		storeBodies bool
		bodies      string
		wantSelect  []string // of body, bodyPreview
		wantExpand  bool
		keepBody    bool
		keepPreview bool
		keepAtts    bool
	}{
		{true, workflows.BodiesStore, []string{"bodyPreview", "body"}, true, true, true, true},
		{false, workflows.BodiesOnDemand, []string{"bodyPreview"}, true, false, true, true},
		{false, workflows.BodiesNone, nil, true, false, false, true},
		{false, workflows.BodiesMetadata, nil, false, false, false, false},
		// Inputs from before the policy was passed: as they ran.
		{true, "", []string{"bodyPreview", "body"}, true, true, true, true},
		{false, "", []string{"bodyPreview"}, true, false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.bodies, func(t *testing.T) {
			p := policyOf(tt.storeBodies, tt.bodies)
			var content []string
			for _, f := range p.selectList() {
				if f == "body" || f == "bodyPreview" {
					content = append(content, f)
				}
			}
			if !slices.Equal(content, tt.wantSelect) || !slices.Contains(p.selectList(), "subject") {
				t.Errorf("select %v", p.selectList())
			}
			if (p.expand() != nil) != tt.wantExpand {
				t.Errorf("expand %v", p.expand())
			}
			msgs := []store.Message{{ID: "m", Subject: "s", Body: &body, BodyContentType: "html", BodyPreview: "hi",
				Attachments: []store.Attachment{{ID: "a"}}}}
			p.apply(msgs)
			m := msgs[0]
			if (m.Body != nil) != tt.keepBody || (m.BodyPreview != "") != tt.keepPreview || (len(m.Attachments) > 0) != tt.keepAtts || m.Subject != "s" {
				t.Errorf("applied: %+v", m)
			}
		})
	}
}
