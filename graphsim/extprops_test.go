package graphsim_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
)

const sendKeyProp = "String {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name X-Outlookd-Send-Key"

type extMessage struct {
	ID       string `json:"id"`
	Subject  string `json:"subject"`
	IsDraft  bool   `json:"isDraft"`
	ExtProps []struct {
		ID    string `json:"id"`
		Value string `json:"value"`
	} `json:"singleValueExtendedProperties"`
}

type extPage struct {
	Value []extMessage `json:"value"`
}

func keyedDraft(key string, to ...string) map[string]any {
	var rcpts []any
	for _, a := range to {
		rcpts = append(rcpts, map[string]any{"emailAddress": map[string]string{"address": a}})
	}
	return map[string]any{
		"subject": "Keyed " + key, "toRecipients": rcpts,
		"singleValueExtendedProperties": []map[string]string{{"id": sendKeyProp, "value": key}},
	}
}

func extFilterQuery(path, id, value string) string {
	return path + "?" + url.Values{"$filter": {"singleValueExtendedProperties/Any(ep: ep/id eq '" + id + "' and ep/value eq '" + value + "')"}}.Encode()
}

func TestExtendedProperties(t *testing.T) {
	f := newFixture(t, graphsim.Options{})
	ctx := context.Background()
	tok := f.token(t, "Mail.ReadWrite", "Mail.Send")
	imm := []string{"Prefer", `IdType="ImmutableId"`}

	var d extMessage
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages", keyedDraft("k-1", "alex@fabrikam.example"), &d, imm...); st != 201 || d.ID == "" {
		t.Fatalf("create keyed draft: %d", st)
	}
	if len(d.ExtProps) != 0 {
		t.Errorf("the created draft carries its extended properties unasked: %+v", d.ExtProps)
	}
	inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "unkeyed"})

	// $expand with a $filter on id brings the property back; without a
	// match the key is left out.
	var got extMessage
	expand := "?" + url.Values{"$expand": {"singleValueExtendedProperties($filter=id eq '" + sendKeyProp + "')"}}.Encode()
	if st, _ := f.graphGet(t, tok, "/me/messages/"+url.PathEscape(d.ID)+expand, &got, imm...); st != 200 || len(got.ExtProps) != 1 || got.ExtProps[0].Value != "k-1" || got.ExtProps[0].ID != sendKeyProp {
		t.Fatalf("expand: %d %+v", st, got)
	}
	other := "String {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name Other"
	var none map[string]any
	f.graphGet(t, tok, "/me/messages/"+url.PathEscape(d.ID)+"?"+url.Values{"$expand": {"singleValueExtendedProperties($filter=id eq '" + other + "')"}}.Encode(), &none)
	if _, ok := none["singleValueExtendedProperties"]; ok {
		t.Errorf("an unmatched expand has the key: %v", none["singleValueExtendedProperties"])
	}

	// $filter on the mailbox and on Drafts finds it; the value compares
	// without case, the Name with case.
	for _, path := range []string{"/me/messages", "/me/mailFolders/drafts/messages"} {
		var p extPage
		if st, _ := f.graphGet(t, tok, extFilterQuery(path, sendKeyProp, "K-1"), &p, imm...); st != 200 || len(p.Value) != 1 || p.Value[0].ID != d.ID {
			t.Errorf("%s filter: %d %+v", path, st, p.Value)
		}
	}
	var p extPage
	lowerName := "String {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name x-outlookd-send-key"
	if st, _ := f.graphGet(t, tok, extFilterQuery("/me/messages", lowerName, "k-1"), &p); st != 200 || len(p.Value) != 0 {
		t.Errorf("the Name matched without case: %d %+v", st, p.Value)
	}
	if st, _ := f.graphGet(t, tok, extFilterQuery("/me/mailFolders/sentitems/messages", sendKeyProp, "k-1"), &p); st != 200 || len(p.Value) != 0 {
		t.Errorf("Sent Items before sending: %d %+v", st, p.Value)
	}

	// The property survives sending: the Sent Items copy keeps it, the
	// recipient's copy does not carry it.
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages/"+url.PathEscape(d.ID)+"/send", nil, nil); st != 202 {
		t.Fatalf("send: %d", st)
	}
	if st, _ := f.graphGet(t, tok, extFilterQuery("/me/mailFolders/sentitems/messages", sendKeyProp, "k-1"), &p, imm...); st != 200 || len(p.Value) != 1 || p.Value[0].ID != d.ID || p.Value[0].IsDraft {
		t.Errorf("Sent Items after sending: %d %+v", st, p.Value)
	}
	if st, _ := f.graphGet(t, tok, extFilterQuery("/me/mailFolders/drafts/messages", sendKeyProp, "k-1"), &p); st != 200 || len(p.Value) != 0 {
		t.Errorf("Drafts after sending: %d %+v", st, p.Value)
	}
	truth, _ := f.ctl.GroundTruth(ctx, f.ada.UPN)
	for _, m := range truth.Messages {
		if m.ImmutableID == d.ID && m.ExtendedProperties[sendKeyProp] != "k-1" {
			t.Errorf("ground truth lost the property: %+v", m.ExtendedProperties)
		}
	}

	// sendMail keeps the property on its Sent Items copy too.
	body := map[string]any{"message": keyedDraft("k-2", "alex@fabrikam.example")}
	if st, _ := f.graphDo(t, tok, "POST", "/me/sendMail", body, nil); st != 202 {
		t.Fatalf("sendMail: %d", st)
	}
	if st, _ := f.graphGet(t, tok, extFilterQuery("/me/mailFolders/sentitems/messages", sendKeyProp, "k-2"), &p); st != 200 || len(p.Value) != 1 {
		t.Errorf("sendMail's Sent Items copy: %d %+v", st, p.Value)
	}

	// contains and startswith on the value, and an id-only filter.
	for _, q := range []string{
		"singleValueExtendedProperties/any(ep:ep/Id eq '" + sendKeyProp + "' and contains(ep/Value, '-'))",
		"singleValueExtendedProperties/any(x: x/id eq '" + sendKeyProp + "' and startswith(x/value, 'K'))",
		"singleValueExtendedProperties/any(ep: ep/id eq '" + sendKeyProp + "')",
	} {
		if st, _ := f.graphGet(t, tok, "/me/messages?"+url.Values{"$filter": {q}}.Encode(), &p); st != 200 || len(p.Value) != 2 {
			t.Errorf("%s: %d %d", q, st, len(p.Value))
		}
	}

	// PATCH sets a property on an existing message, sent or not.
	ids := inject(t, f, f.ada.UPN, graphsim.MessageSpec{Subject: "received"})
	patch := map[string]any{"singleValueExtendedProperties": []map[string]string{{"id": "Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 0x8012", "value": "12"}}}
	if st, _ := f.graphDo(t, tok, "PATCH", "/me/messages/"+url.PathEscape(ids[0]), patch, nil); st != 200 {
		t.Errorf("patch a received message's extended property: %d", st)
	}
	q := "singleValueExtendedProperties/any(ep: ep/id eq 'Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 0x8012' and cast(ep/value, Edm.Int32) gt 10)"
	if st, _ := f.graphGet(t, tok, "/me/messages?"+url.Values{"$filter": {q}}.Encode(), &p); st != 200 || len(p.Value) != 1 {
		t.Errorf("numeric filter: %d %+v", st, p.Value)
	}
	// A property tag in the proptag format.
	tagged := map[string]any{"subject": "tagged", "singleValueExtendedProperties": []map[string]string{{"id": "String 0x4001001E", "value": "v"}}}
	if st, _ := f.graphDo(t, tok, "POST", "/me/messages", tagged, nil); st != 201 {
		t.Errorf("proptag id: %d", st)
	}

	// Ids Microsoft does not accept.
	for _, bad := range []string{
		"X-Outlookd-Send-Key",
		"String 8ECCC264-6880-4EBE-992F-8888D2EEAA1D Name X",
		"Text {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name X",
		"StringArray {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Name X",
		"Integer {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Id 0x0027",
		"String {8ECCC264-6880-4EBE-992F-8888D2EEAA1D} Label X",
	} {
		var ge graphErr
		b := map[string]any{"subject": "bad", "singleValueExtendedProperties": []map[string]string{{"id": bad, "value": "v"}}}
		if st, _ := f.graphDo(t, tok, "POST", "/me/messages", b, &ge); st != 400 || ge.Error.Code != "ErrorInvalidExtendedProperty" {
			t.Errorf("create with %q: %d %+v", bad, st, ge.Error)
		}
		if st, _ := f.graphGet(t, tok, extFilterQuery("/me/messages", bad, "v"), &ge); st != 400 || ge.Error.Code != "ErrorInvalidExtendedProperty" {
			t.Errorf("filter on %q: %d %+v", bad, st, ge.Error)
		}
	}
	var ge graphErr
	if st, _ := f.graphGet(t, tok, "/me/messages/"+url.PathEscape(d.ID)+"?$expand=singleValueExtendedProperties", &ge); st != 400 {
		t.Errorf("expand every extended property: %d", st)
	}
}
