package graphsim_test

import (
	"context"
	"net/url"
	"slices"
	"testing"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// orgFixture wraps simtest's Org in the package's test helpers.
type orgFixture struct {
	*fixture
	org *simtest.Org
}

func newOrg(t *testing.T, opts graphsim.Options) *orgFixture {
	t.Helper()
	org := simtest.StartOrg(t, opts)
	st := org.Tenant
	return &orgFixture{fixture: &fixture{Tenant: st, sim: st.Sim, ctl: st.Ctl, tenant: st.Tenant, app: st.App, ada: st.Ada, admin: st.Admin, shared: st.Shared}, org: org}
}

func TestMailboxRights(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	shared, svc := o.shared.UPN, o.org.Service.UPN
	ids := inject(t, o.fixture, shared, graphsim.MessageSpec{Subject: "for the team"})
	tok := o.org.ServiceToken(t, "Mail.ReadWrite.Shared", "Mail.Send.Shared")
	msgPath := "/users/" + shared + "/messages/" + url.PathEscape(ids[0])
	fa := graphsim.RightFullAccess
	tests := []struct {
		name              string
		rights            []string
		read, write, send int
		sendCode          string
		sender            string // the sent message's sender
	}{
		{"read", []string{graphsim.RightRead}, 200, 403, 403, "ErrorSendAsDenied", ""},
		{"read and write", []string{graphsim.RightReadWrite}, 200, 200, 403, "ErrorSendAsDenied", ""},
		{"full access", []string{fa}, 200, 200, 403, "ErrorSendAsDenied", ""},
		{"send as without full access", []string{graphsim.RightSendAs}, 403, 403, 403, "ErrorAccessDenied", ""},
		{"full access and send as", []string{fa, graphsim.RightSendAs}, 200, 200, 202, "", shared},
		{"full access and send on behalf", []string{fa, graphsim.RightSendOnBehalf}, 200, 200, 202, "", svc},
		{"send as wins over send on behalf", []string{fa, graphsim.RightSendAs, graphsim.RightSendOnBehalf}, 200, 200, 202, "", shared},
		{"none", nil, 403, 403, 403, "ErrorSendAsDenied", ""},
	}
	for _, tt := range tests {
		if err := o.ctl.RevokeMailboxRights(ctx, shared, svc); err != nil {
			t.Fatal(err)
		}
		if len(tt.rights) > 0 {
			if err := o.ctl.GrantMailboxRights(ctx, shared, svc, tt.rights...); err != nil {
				t.Fatal(err)
			}
		}
		var ge graphErr
		if st, _ := o.graphGet(t, tok, msgPath, &ge); st != tt.read || (st == 403 && ge.Error.Code != "ErrorAccessDenied") {
			t.Errorf("%s: read %d %+v", tt.name, st, ge.Error)
		}
		if st, _ := o.graphDo(t, tok, "PATCH", msgPath, map[string]any{"isRead": true}, nil); st != tt.write {
			t.Errorf("%s: write %d", tt.name, st)
		}
		before, _ := o.ctl.SentMail(ctx, shared)
		ge = graphErr{}
		if st, _ := o.graphDo(t, tok, "POST", "/users/"+shared+"/sendMail", mailBody("x@fabrikam.example"), &ge); st != tt.send || ge.Error.Code != tt.sendCode {
			t.Errorf("%s: send %d %+v", tt.name, st, ge.Error)
		}
		after, _ := o.ctl.SentMail(ctx, shared)
		if tt.send == 202 && (len(after) != len(before)+1 || after[len(after)-1].Sender != tt.sender || after[len(after)-1].From != shared) {
			t.Errorf("%s: sent %+v, want sender %s", tt.name, after, tt.sender)
		}
	}
	// The control API lists and revokes single rights.
	if err := o.ctl.GrantMailboxRights(ctx, shared, svc, graphsim.RightFullAccess, graphsim.RightSendAs); err != nil {
		t.Fatal(err)
	}
	if err := o.ctl.RevokeMailboxRights(ctx, shared, svc, graphsim.RightSendAs); err != nil {
		t.Fatal(err)
	}
	got, err := o.ctl.MailboxRights(ctx, shared)
	if err != nil || !slices.Equal(got[svc], []string{graphsim.RightFullAccess}) {
		t.Errorf("rights = %v %v", got, err)
	}
	if err := o.ctl.GrantMailboxRights(ctx, shared, svc, "owner"); err == nil {
		t.Error("an unknown right was granted")
	}
	// The .Shared scopes also reach the user's own mailbox.
	if st, _ := o.graphGet(t, tok, "/me/messages", nil); st != 200 {
		t.Errorf("own mailbox with .Shared scopes: %d", st)
	}
}

func TestSendAsFromOwnMailbox(t *testing.T) {
	o := newOrg(t, graphsim.Options{})
	ctx := context.Background()
	shared, svc := o.shared.UPN, o.org.Service.UPN
	tok := o.org.ServiceToken(t, "Mail.Send", "Mail.Send.Shared")
	body := mailBody("x@fabrikam.example")
	body["message"].(map[string]any)["from"] = map[string]any{"emailAddress": map[string]string{"address": shared}}
	for _, tt := range []struct {
		right, sender string
	}{{graphsim.RightSendAs, shared}, {graphsim.RightSendOnBehalf, svc}} {
		if err := o.ctl.RevokeMailboxRights(ctx, shared, svc); err != nil {
			t.Fatal(err)
		}
		if err := o.ctl.GrantMailboxRights(ctx, shared, svc, tt.right); err != nil {
			t.Fatal(err)
		}
		if st, _ := o.graphDo(t, tok, "POST", "/me/sendMail", body, nil); st != 202 {
			t.Fatalf("%s: %d", tt.right, st)
		}
		sent, _ := o.ctl.SentMail(ctx, svc)
		if last := sent[len(sent)-1]; last.From != shared || last.Sender != tt.sender {
			t.Errorf("%s: from %s sender %s, want sender %s", tt.right, last.From, last.Sender, tt.sender)
		}
	}
}
