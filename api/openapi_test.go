package api_test

import (
	"io"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/webhook"
)

// TestOpenAPIDocument builds the document as an OpenAPI 3.1 model (every
// $ref resolves) and checks that it describes exactly the routes the
// router serves under /v1, method by method.
func TestOpenAPIDocument(t *testing.T) {
	// A dangling reference is caught by the same check.
	broken := []byte(strings.Replace(string(api.OpenAPI), `"#/components/schemas/Folder"`, `"#/components/schemas/Nothing"`, 1))
	if bdoc, err := libopenapi.NewDocument(broken); err == nil {
		if m, err := bdoc.BuildV3Model(); err == nil && (m.Index == nil || len(m.Index.GetReferenceIndexErrors()) == 0) {
			t.Error("a dangling $ref went unnoticed")
		}
	}
	doc, err := libopenapi.NewDocument(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("OpenAPI version %q, want 3.1.0", v)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("the document does not build: %v", err)
	}
	if idx := model.Index; idx != nil {
		if errs := idx.GetReferenceIndexErrors(); len(errs) > 0 {
			t.Errorf("unresolved references: %v", errs)
		}
	}
	var documented []string
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	// The router with a store (never used: no request is made).
	router := api.NewRouter(api.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: &store.Store{}, Receiver: &webhook.Receiver{}})
	param := regexp.MustCompile(`:(\w+)`)
	var served []string
	for _, r := range router.Routes() {
		if !strings.HasPrefix(r.Path, "/v1/") {
			continue
		}
		served = append(served, r.Method+" "+param.ReplaceAllString(r.Path, "{$1}"))
	}
	sort.Strings(documented)
	sort.Strings(served)
	for _, s := range served {
		if !slices.Contains(documented, s) {
			t.Errorf("served but not documented: %s", s)
		}
	}
	for _, d := range documented {
		if !slices.Contains(served, d) {
			t.Errorf("documented but not served: %s", d)
		}
	}
	if len(served) < 15 {
		t.Errorf("only %d routes served", len(served))
	}
}
