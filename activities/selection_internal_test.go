package activities

import (
	"testing"

	"github.com/outlookd/outlookd/workflows"
)

func TestSelectionRefuses(t *testing.T) {
	const g = "0b7d5c8e-1f5a-4c2e-9d3b-6a1e2f3c4d5e"
	for _, tc := range []struct {
		name   string
		sel    workflows.Selection
		member bool
		want   string
	}{
		{"everyone", workflows.Selection{}, false, ""},
		{"listed", workflows.Selection{Include: []string{"Ada@contoso.example"}}, false, ""},
		{"not listed", workflows.Selection{Include: []string{"bob@contoso.example"}}, false, ExcludedNotSelected},
		{"a member", workflows.Selection{Groups: []string{g}}, true, ""},
		{"not a member", workflows.Selection{Groups: []string{g}}, false, ExcludedNotSelected},
		{"listed, not a member", workflows.Selection{Groups: []string{g}, Include: []string{"u-ada"}}, false, ""},
		{"a member, excluded", workflows.Selection{Groups: []string{g}, Exclude: []string{"ada@contoso.example"}}, true, ExcludedBySelection},
	} {
		if got := selectionRefuses(tc.sel, tc.member, "u-ada", "ada@contoso.example"); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
