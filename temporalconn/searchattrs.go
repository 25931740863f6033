package temporalconn

import (
	"context"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/temporal"
)

// SetupCommand is what an operator runs to register the search attributes.
const SetupCommand = "outlookd setup"

// Outcome is what registration did with one search attribute.
type Outcome string

// Outcomes of EnsureSearchAttributes.
const (
	Added   Outcome = "added"
	Present Outcome = "already present"
)

// AttributeResult is one search attribute and what registration did.
type AttributeResult struct {
	Name    string
	Type    enumspb.IndexedValueType
	Outcome Outcome
}

// MissingAttributesError says which search attributes a namespace lacks or
// has with another type.
type MissingAttributesError struct {
	Namespace string
	Missing   []string // "Name (Type)"
	WrongType []string // "Name is Type, want Type"
}

func (e *MissingAttributesError) Error() string {
	var parts []string
	if len(e.Missing) > 0 {
		parts = append(parts, "lacks the search attributes "+strings.Join(e.Missing, ", "))
	}
	if len(e.WrongType) > 0 {
		parts = append(parts, "has search attributes of the wrong type: "+strings.Join(e.WrongType, "; "))
	}
	hint := fmt.Sprintf("run %q with the same Temporal settings", SetupCommand)
	if len(e.Missing) == 0 {
		// A type cannot change in place: the attribute has to be removed
		// (losing its values) before setup adds it again.
		hint = fmt.Sprintf("remove them (temporal operator search-attribute remove --namespace %s --name ...) and run %q", e.Namespace, SetupCommand)
	}
	return fmt.Sprintf("temporal namespace %q %s: %s", e.Namespace, strings.Join(parts, " and "), hint)
}

// CheckSearchAttributes returns a *MissingAttributesError when the namespace
// lacks one of want or has it with another type.
func CheckSearchAttributes(ctx context.Context, oc operatorservice.OperatorServiceClient, namespace string, want []temporal.SearchAttributeKey) error {
	have, err := listSearchAttributes(ctx, oc, namespace)
	if err != nil {
		return err
	}
	missing, wrong := compare(have, want)
	if len(missing) > 0 || len(wrong) > 0 {
		return &MissingAttributesError{Namespace: namespace, Missing: names(missing), WrongType: wrong}
	}
	return nil
}

// EnsureSearchAttributes adds those of want the namespace lacks and reports
// what it did with each. An attribute present with another type is an error
// and nothing is added.
func EnsureSearchAttributes(ctx context.Context, oc operatorservice.OperatorServiceClient, namespace string, want []temporal.SearchAttributeKey) ([]AttributeResult, error) {
	have, err := listSearchAttributes(ctx, oc, namespace)
	if err != nil {
		return nil, err
	}
	missing, wrong := compare(have, want)
	if len(wrong) > 0 {
		return nil, &MissingAttributesError{Namespace: namespace, WrongType: wrong}
	}
	if len(missing) > 0 {
		add := make(map[string]enumspb.IndexedValueType, len(missing))
		for _, k := range missing {
			add[k.GetName()] = k.GetValueType()
		}
		if _, err := oc.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: add}); err != nil {
			return nil, fmt.Errorf("temporal: add search attributes %s to namespace %q: %w", strings.Join(names(missing), ", "), namespace, err)
		}
	}
	out := make([]AttributeResult, 0, len(want))
	for _, k := range sorted(want) {
		r := AttributeResult{Name: k.GetName(), Type: k.GetValueType(), Outcome: Present}
		if slices.ContainsFunc(missing, func(m temporal.SearchAttributeKey) bool { return m.GetName() == k.GetName() }) {
			r.Outcome = Added
		}
		out = append(out, r)
	}
	return out, nil
}

func listSearchAttributes(ctx context.Context, oc operatorservice.OperatorServiceClient, namespace string) (map[string]enumspb.IndexedValueType, error) {
	resp, err := oc.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("temporal: list the search attributes of namespace %q: %w", namespace, err)
	}
	return resp.GetCustomAttributes(), nil
}

// compare returns the attributes of want the namespace lacks, and one line
// for each it has with another type.
func compare(have map[string]enumspb.IndexedValueType, want []temporal.SearchAttributeKey) (missing []temporal.SearchAttributeKey, wrong []string) {
	for _, k := range sorted(want) {
		got, ok := have[k.GetName()]
		switch {
		case !ok:
			missing = append(missing, k)
		case got != k.GetValueType():
			wrong = append(wrong, fmt.Sprintf("%s is %s, want %s", k.GetName(), got, k.GetValueType()))
		}
	}
	return missing, wrong
}

func sorted(keys []temporal.SearchAttributeKey) []temporal.SearchAttributeKey {
	return slices.SortedFunc(slices.Values(keys), func(a, b temporal.SearchAttributeKey) int { return strings.Compare(a.GetName(), b.GetName()) })
}

func names(keys []temporal.SearchAttributeKey) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s (%s)", k.GetName(), k.GetValueType())
	}
	return out
}
