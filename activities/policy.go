package activities

import (
	"context"

	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// contentPolicy is what of a message's content is asked of Graph and
// stored: the body, its preview, the attachments' metadata.
type contentPolicy struct {
	bodies, preview, attachments bool
}

// policyOf reads the body policy of an input; inputs from before the
// policy was passed (empty) keep previews and attachments, and bodies
// when storeBodies says so.
func policyOf(storeBodies bool, bodies string) contentPolicy {
	switch bodies {
	case workflows.BodiesStore:
		return contentPolicy{bodies: true, preview: true, attachments: true}
	case workflows.BodiesOnDemand:
		return contentPolicy{preview: true, attachments: true}
	case workflows.BodiesNone:
		return contentPolicy{attachments: true}
	case workflows.BodiesMetadata:
		return contentPolicy{}
	}
	return contentPolicy{bodies: storeBodies, preview: true, attachments: true}
}

// selectList is the $select of the policy: the headers, and what of the
// content it keeps.
func (p contentPolicy) selectList() []string {
	out := make([]string, 0, len(messageSelect)+1)
	for _, f := range messageSelect {
		if f != "bodyPreview" || p.preview {
			out = append(out, f)
		}
	}
	if p.bodies {
		out = append(out, "body")
	}
	return out
}

// expand brings the attachments' metadata when the policy keeps it.
func (p contentPolicy) expand() []string {
	if !p.attachments {
		return nil
	}
	return []string{attachmentExpand}
}

// apply drops from converted messages what the policy does not keep
// (whatever Graph returned).
func (p contentPolicy) apply(msgs []store.Message) {
	for i := range msgs {
		if !p.bodies {
			msgs[i].Body, msgs[i].BodyContentType = nil, ""
		}
		if !p.preview {
			msgs[i].BodyPreview = ""
		}
		if !p.attachments {
			msgs[i].Attachments = nil
		}
	}
}

// StripContent deletes what a mailbox's stored messages hold beyond a
// body policy (the policy now keeps less).
func (a *Activities) StripContent(ctx context.Context, in workflows.StripContentInput) (workflows.StripContentResult, error) {
	p := policyOf(false, in.Bodies)
	n, err := a.Store.StripContent(ctx, storeKey(in.ConnectionID, in.MailboxID), store.Keep{Bodies: p.bodies, Previews: p.preview, Attachments: p.attachments})
	if err != nil {
		return workflows.StripContentResult{}, classifyStore(err)
	}
	return workflows.StripContentResult{Messages: n}, nil
}
