package main

import (
	"testing"

	"github.com/outlookd/outlookd/workflows"
)

func TestJudgeSend(t *testing.T) {
	sent := sendView{State: workflows.SendSent, MessageID: "m1"}
	once := sendTruth{accepted: 1, delivered: 1, inSentItems: 1, sentItemID: "m1"}
	for _, tc := range []struct {
		name                   string
		view                   sendView
		truth                  sendTruth
		dup, lost, unknown, ok bool
	}{
		{"exactly once", sent, once, false, false, false, true},
		{"submitted twice", sent, sendTruth{accepted: 2, delivered: 2, inSentItems: 2, sentItemID: "m1"}, true, false, false, false},
		{"delivered twice", sent, sendTruth{accepted: 1, delivered: 2, inSentItems: 1, sentItemID: "m1"}, true, false, false, false},
		{"two Sent Items copies", sent, sendTruth{accepted: 1, delivered: 1, inSentItems: 2, sentItemID: "m1"}, true, false, false, false},
		{"said sent, never went", sent, sendTruth{}, false, true, false, false},
		{"no Sent Items copy", sent, sendTruth{accepted: 1, delivered: 1, sentItemID: "m1"}, false, true, false, false},
		{"a draft left behind", sent, sendTruth{accepted: 1, delivered: 1, inSentItems: 1, elsewhere: 1, sentItemID: "m1"}, false, false, false, false},
		{"message_id not the copy", sendView{State: workflows.SendSent, MessageID: "m2"}, once, false, false, false, false},
		{"sent without message_id", sendView{State: workflows.SendSent}, once, false, false, false, false},
		{"went, but failed outcome_unknown", sendView{State: workflows.SendFailed, Reason: workflows.ReasonOutcomeUnknown}, once, false, false, true, false},
		{"failed and nothing went", sendView{State: workflows.SendFailed, Reason: workflows.ReasonNotSubmitted}, sendTruth{}, false, true, false, false},
		{"still sending", sendView{State: workflows.SendSending}, once, false, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := judgeSend(tc.view, tc.truth)
			if j.dup != tc.dup || j.lost != tc.lost || j.unknown != tc.unknown || (j.problem == "") != tc.ok {
				t.Errorf("judged %+v, want dup=%t lost=%t unknown=%t ok=%t", j, tc.dup, tc.lost, tc.unknown, tc.ok)
			}
		})
	}
}
