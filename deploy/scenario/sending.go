package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/internal/benchfig"
	"github.com/outlookd/outlookd/workflows"
)

// sendView is what the scenarios read of a send.
type sendView struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
	MessageID string     `json:"message_id"`
	NotBefore *time.Time `json:"not_before"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at"`
}

func (s sendView) final() bool {
	return s.State == workflows.SendSent || s.State == workflows.SendFailed || s.State == workflows.SendCanceled
}

// sendsOf lists every send of a connection.
func (w *world) sendsOf(connID string) ([]sendView, error) {
	var all []sendView
	cursor := ""
	for {
		var page struct {
			Data []sendView `json:"data"`
			Next string     `json:"next_cursor"`
		}
		path := "/v1/connections/" + connID + "/sends?limit=200"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		st, err := w.call("GET", path, nil, &page)
		if err == nil && st == 429 {
			time.Sleep(time.Second) // the API key's rate: ask again
			continue
		}
		if err == nil && st != 200 {
			err = fmt.Errorf("GET %s: %d", path, st)
		}
		if err != nil {
			return nil, err
		}
		all = append(all, page.Data...)
		if cursor = page.Next; cursor == "" {
			return all, nil
		}
	}
}

// postSend posts one send (a new message, or an answer at path) with its
// Idempotency-Key as an app does: a transport error, a 5xx, a 429 (the
// API key's rate) or a connection not ready yet is retried with the same key and body until it answers
// 202. It answers the send and whether the API said it replayed it.
func (w *world) postSend(ctx context.Context, user, path, key string, body []byte) (sendView, bool, int, error) {
	var s sendView
	tries := 0
	for {
		tries++
		st, h, raw, err := w.callBytes(user, "POST", path, body, map[string]string{"Idempotency-Key": key})
		switch {
		case err == nil && st == 202:
			if err := json.Unmarshal(raw, &s); err != nil {
				return s, false, tries, fmt.Errorf("send %s: %w", key, err)
			}
			return s, h.Get("Idempotent-Replayed") == "true", tries, nil
		case err == nil && st < 500 && st != 429 && !(st == 409 && strings.Contains(string(raw), "connection_not_ready")):
			return s, false, tries, fmt.Errorf("send %s: %d %s", key, st, raw)
		}
		if tries >= 30 {
			return s, false, tries, fmt.Errorf("send %s: %d tries, the last %d %v", key, tries, st, err)
		}
		select {
		case <-ctx.Done():
			return s, false, tries, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// sender is one connection of the send scenario and the messages it may
// answer.
type sender struct {
	upn, id   string
	originals []string // synced messages from the sink, to reply to
}

// plannedSend is one send the app asks for.
type plannedSend struct {
	i          int
	from       *sender
	kind       string // new or reply
	attachment bool
	retry      bool // the app asks again with the same key
	key, path  string
	id         string
}

// sink receives every message the scenario sends (a simulator mailbox, so
// graphsim records each delivered copy).
const sink = "sink@contoso.example"

// sendFeatures is the request body of a connection that reads and sends.
func sendFeatures(folders ...string) map[string]any {
	return map[string]any{"features": map[string]bool{"read": true, "send": true}, "folders": folders}
}

// connectSenders adds n mailboxes to graphsim, each with answerable mail
// from the sink, connects them for reading and sending, and waits until
// they are live with that mail synced.
func (w *world) connectSenders(ctx context.Context, prefix string, n, originals int, folders ...string) ([]*sender, error) {
	ss := make([]*sender, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range ss {
		ss[i] = &sender{upn: fmt.Sprintf("%s%03d@contoso.example", prefix, i)}
		g.Go(func() error {
			if _, err := w.sim.AddUser(gctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: ss[i].upn, DisplayName: fmt.Sprintf("Sender %d", i)}); err != nil {
				return err
			}
			specs := make([]graphsim.MessageSpec, originals)
			for k := range specs {
				specs[k] = graphsim.MessageSpec{Subject: fmt.Sprintf("Question %d for %s", k, ss[i].upn), From: graphsim.Recipient{Name: "Sink", Address: sink},
					To: []graphsim.Recipient{{Address: ss[i].upn}}, Body: "Could you answer this?", BodyType: "text"}
			}
			if originals > 0 {
				if _, err := w.sim.InjectMessages(gctx, ss[i].upn, specs...); err != nil {
					return err
				}
			}
			id, err := w.createConsented(defaultUser, ss[i].upn, sendFeatures(folders...))
			ss[i].id = id
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, s := range ss {
		if _, err := w.waitConn(s.id, 5*time.Minute, "live", func(c conn) bool {
			return c.State == "active" && c.Backfill != nil && c.Backfill.CompletedAt != nil && c.SyncMode != ""
		}); err != nil {
			return nil, fmt.Errorf("%s: %w", s.upn, err)
		}
		if originals == 0 {
			continue
		}
		if err := waitFor(time.Minute, func() error {
			var msgs struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
			}
			if _, err := w.call("GET", "/v1/connections/"+s.id+"/messages?from="+sink, nil, &msgs); err != nil {
				return err
			}
			if len(msgs.Data) < originals {
				return fmt.Errorf("%s: %d of %d messages to answer synced", s.upn, len(msgs.Data), originals)
			}
			s.originals = s.originals[:0]
			for _, m := range msgs.Data {
				s.originals = append(s.originals, m.ID)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

// sendExactlyOnce sends n messages over 20 connections (new messages,
// replies to synced mail, some with a 10 MB file that goes through an
// upload session) while graphsim answers 15 % of the sends ambiguously
// after delivering them (202 with Retry-After, 504, a reset connection),
// the worker is killed with SIGKILL every 10 s, and the app asks again
// with the same Idempotency-Key for 20 % of them. graphsim's ground truth
// must hold one accepted submission, one delivered copy and one Sent Items
// copy per send, and nothing else.
func sendExactlyOnce(ctx context.Context, w *world, size int) (result, error) {
	var r result
	n := max(size/40, 40) // 500 at the default size, 50 at make test's 2000
	const connections = 20
	if _, err := w.sim.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: sink, DisplayName: "Sink"}); err != nil {
		return r, err
	}
	senders, err := w.connectSenders(ctx, "sender", connections, 2, "inbox", "sentitems")
	if err != nil {
		return r, err
	}

	// 10 MB of incompressible bytes, over the 3 MB that goes inline: the
	// draft gets it through an upload session, in ranges.
	file := make([]byte, 10<<20)
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range file {
		file[i] = byte(rng.Uint32())
	}
	attachment := map[string]any{"name": "report.bin", "content_type": "application/octet-stream", "content_bytes": base64.StdEncoding.EncodeToString(file)}
	plan := make([]*plannedSend, n)
	bodies := make([][]byte, n)
	for i := range plan {
		p := &plannedSend{i: i, from: senders[i%connections], kind: "new", attachment: i%25 == 5, retry: i%5 == 1,
			key: fmt.Sprintf("seo-%s-%04d", w.id, i)}
		var body map[string]any
		if i%10 < 3 {
			p.kind = "reply"
			p.path = "/v1/connections/" + p.from.id + "/messages/" + p.from.originals[i%len(p.from.originals)] + "/reply"
			body = map[string]any{"comment": fmt.Sprintf("Answer %d.", i)}
		} else {
			p.path = "/v1/connections/" + p.from.id + "/sends"
			body = map[string]any{"to": []map[string]string{{"address": sink, "name": "Sink"}}, "subject": fmt.Sprintf("exactly once %04d", i),
				"body": map[string]string{"content_type": "text", "content": fmt.Sprintf("Message %d, sent once.", i)}}
		}
		if p.attachment {
			body["attachments"] = []any{attachment}
		}
		bodies[i], _ = json.Marshal(body)
		plan[i] = p
	}

	// 15 % of the sends are delivered and then answered ambiguously:
	// a 202 with Retry-After, a 504, or a reset connection.
	if err := w.sim.SetSendFault(ctx, graphsim.SendFault{Mailbox: "*", AcceptedRetryAfter: 0.05, DeliveredTimeout: 0.05, DeliveredReset: 0.05, RetryAfter: 5}); err != nil {
		return r, err
	}

	// The worker dies with SIGKILL every 10 s and comes back at once, while
	// the sends are posted and until they have all ended (or enough kills).
	maxKills := max(6, n/25)
	var kills atomic.Int64
	stopChaos := make(chan struct{})
	chaosDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopChaos:
				chaosDone <- nil
				return
			case <-tick.C:
			}
			w.killWorker()
			kills.Add(1)
			if err := w.startWorker(); err != nil {
				chaosDone <- fmt.Errorf("restart %d: %w", kills.Load(), err)
				return
			}
			if kills.Load() >= int64(maxKills) {
				chaosDone <- nil
				return
			}
		}
	}()
	stop := sync.OnceFunc(func() { close(stopChaos) })
	defer stop()

	// Each connection posts its sends in turn; a fifth of them are posted
	// again with the same key a moment later, as an app that did not hear
	// the answer would, and must find the same send.
	start := time.Now()
	var replayed, appRetries atomic.Int64
	var retryErrs []error
	var emu sync.Mutex
	var retries sync.WaitGroup
	g, gctx := errgroup.WithContext(ctx)
	for c := range connections {
		g.Go(func() error {
			for i := c; i < n; i += connections {
				p := plan[i]
				s, _, tries, err := w.postSend(gctx, defaultUser, p.path, p.key, bodies[i])
				if err != nil {
					return err
				}
				appRetries.Add(int64(tries - 1))
				p.id = s.ID
				if !p.retry {
					continue
				}
				retries.Add(1)
				go func() {
					defer retries.Done()
					time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
					again, replay, _, err := w.postSend(ctx, defaultUser, p.path, p.key, bodies[i])
					if err == nil && (!replay || again.ID != p.id) {
						err = fmt.Errorf("send %s asked again: replayed=%t, id %s, first %s", p.key, replay, again.ID, p.id)
					}
					if err != nil {
						emu.Lock()
						retryErrs = append(retryErrs, err)
						emu.Unlock()
						return
					}
					replayed.Add(1)
				}()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return r, err
	}
	retries.Wait()
	posted := time.Since(start)
	if err := errors.Join(retryErrs...); err != nil {
		return r, err
	}

	// Wait for every send to end; the chaos stops once they have.
	views, err := w.sendsEnded(senders, plan, 15*time.Minute)
	if err != nil {
		return r, err
	}
	ended := time.Since(start)
	stop()
	if err := <-chaosDone; err != nil {
		return r, err
	}

	v, err := w.verifySends(ctx, senders, plan, views)
	if err != nil {
		return r, err
	}
	r.lost, r.dup = v.lost, v.dup
	replies, files := 0, 0
	for _, p := range plan {
		if p.kind == "reply" {
			replies++
		}
		if p.attachment {
			files++
		}
	}
	sentN, unknown, faults, problems, lat := v.sent, v.unknown, v.faults, v.problems, v.latencies

	ms := benchfig.Millis(lat)
	r.add("sent", sentN)
	r.add("outcome_unknown", unknown)
	r.add("sends", n)
	r.add("connections", connections)
	r.add("replies", replies)
	r.add("attachments_10mb", files)
	r.add("asked_again_same_key", replayed.Load())
	r.add("reposts_after_error", appRetries.Load())
	r.add("ambiguous_answers", faults)
	r.add("kills", kills.Load())
	r.add("posted_s", fmt.Sprintf("%.1f", posted.Seconds()))
	r.add("all_ended_s", fmt.Sprintf("%.1f", ended.Seconds()))
	r.add("send_p50_s", fmt.Sprintf("%.1f", benchfig.Percentile(ms, 0.5)/1000))
	r.add("send_max_s", fmt.Sprintf("%.1f", benchfig.Percentile(ms, 1)/1000))
	if len(problems) > 0 {
		sort.Strings(problems)
		fmt.Fprintln(os.Stderr, "send-exactly-once:\n  "+strings.Join(problems, "\n  "))
		return r, fmt.Errorf("%d of %d sends are not exactly once in effect (first: %s)", len(problems), n, problems[0])
	}
	return r, nil
}

// sendsEnded waits until every planned send has ended, and answers the
// sends as the API shows them, by ID.
func (w *world) sendsEnded(senders []*sender, plan []*plannedSend, d time.Duration) (map[string]sendView, error) {
	deadline := time.Now().Add(d)
	for {
		views := map[string]sendView{}
		for _, s := range senders {
			list, err := w.sendsOf(s.id)
			if err != nil {
				return nil, err
			}
			for _, v := range list {
				views[v.ID] = v
			}
		}
		open := 0
		for _, p := range plan {
			if v, ok := views[p.id]; !ok || !v.final() {
				open++
			}
		}
		if open == 0 {
			return views, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d sends never ended", open, len(plan))
		}
		time.Sleep(2 * time.Second)
	}
}

// sendVerdict is how the planned sends compare with graphsim's ground
// truth: how many went exactly once, lost and duplicated ones, the ones
// whose outcome outlookd could not tell, the ambiguous answers graphsim
// gave, what went wrong with each send that did not go exactly once, and
// the API-call-to-sent latency of those that did.
type sendVerdict struct {
	sent, unknown, lost, dup int
	faults                   int64
	problems                 []string
	latencies                []time.Duration
}

// verifySends judges every planned send against graphsim's ground truth
// (submissions, delivered copies at the sink, Sent Items copies), then
// checks that each Sent Items copy was synced as a message of its
// connection.
func (w *world) verifySends(ctx context.Context, senders []*sender, plan []*plannedSend, views map[string]sendView) (sendVerdict, error) {
	var out sendVerdict
	byKey := func(props map[string]string) string { return props[workflows.SendKeyProperty] }
	accepted, delivered, inSent, strays := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	sentItemOf := map[string]string{}
	counters, err := w.sim.Counters(ctx)
	if err != nil {
		return out, err
	}
	for k, v := range counters {
		if strings.HasPrefix(k, "faults.send.") {
			out.faults += v
		}
	}
	for _, s := range senders {
		sent, err := w.sim.SentMail(ctx, s.upn)
		if err != nil {
			return out, err
		}
		for _, sm := range sent {
			if k := byKey(sm.ExtendedProperties); k != "" {
				accepted[k]++
				sentItemOf[k] = sm.SentItemID
			}
		}
		truth, err := w.sim.GroundTruth(ctx, s.upn)
		if err != nil {
			return out, err
		}
		sentItems := ""
		for _, f := range truth.Folders {
			if f.WellKnown == "sentitems" {
				sentItems = f.ID
			}
		}
		for _, m := range truth.Messages {
			if k := byKey(m.ExtendedProperties); k != "" {
				if m.FolderID == sentItems {
					inSent[k]++
				} else {
					strays[k]++ // a draft left behind, or a copy elsewhere
				}
			}
		}
	}
	dels, err := w.sim.Delivered(ctx, sink)
	if err != nil {
		return out, err
	}
	for _, d := range dels {
		if k := byKey(d.ExtendedProperties); k != "" {
			delivered[k]++
		}
	}
	for _, p := range plan {
		v := views[p.id]
		j := judgeSend(v, sendTruth{accepted: accepted[p.id], delivered: delivered[p.id], inSentItems: inSent[p.id], elsewhere: strays[p.id], sentItemID: sentItemOf[p.id]})
		if j.dup {
			out.dup++
		}
		if j.lost {
			out.lost++
		}
		if j.unknown {
			out.unknown++
		}
		if j.problem != "" {
			out.problems = append(out.problems, p.key+" ("+p.id+"): "+j.problem)
		} else {
			out.sent++
			if v.SentAt != nil {
				out.latencies = append(out.latencies, v.SentAt.Sub(v.CreatedAt))
			}
		}
	}
	if len(out.problems) > 0 {
		return out, nil
	}
	// The Sent Items copies are synced like any mail: each send's
	// message_id is a message of its connection.
	err = waitFor(2*time.Minute, func() error {
		missing := 0
		for _, s := range senders {
			var ids []string
			for _, p := range plan {
				if p.from == s {
					ids = append(ids, views[p.id].MessageID)
				}
			}
			var have int
			if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM messages WHERE mailbox_id = $1 AND id = ANY($2)`, s.id, ids).Scan(&have); err != nil {
				return err
			}
			missing += len(ids) - have
		}
		if missing > 0 {
			return fmt.Errorf("%d sent messages not synced from Sent Items", missing)
		}
		return nil
	})
	if err != nil {
		out.problems = append(out.problems, err.Error())
	}
	return out, nil
}

// sendTruth is what graphsim's ground truth holds of one send: its
// accepted submissions, its copies delivered to the recipient and in the
// sender's Sent Items, its other copies in the mailbox (a draft left
// behind), and the ID of the Sent Items copy of its submission.
type sendTruth struct {
	accepted, delivered, inSentItems, elsewhere int
	sentItemID                                  string
}

// sendJudgement is how one send compares with the ground truth.
type sendJudgement struct {
	dup, lost, unknown bool
	problem            string // "" when the send went exactly once, as the API says
}

// judgeSend compares a send as the API shows it with graphsim's ground
// truth: sent, with one submission, one delivered copy, one Sent Items
// copy that is its message_id, and nothing else.
func judgeSend(v sendView, t sendTruth) sendJudgement {
	j := sendJudgement{
		dup:     t.accepted > 1 || t.delivered > 1 || t.inSentItems > 1,
		lost:    t.delivered == 0 || t.inSentItems == 0,
		unknown: v.State == workflows.SendFailed && v.Reason == workflows.ReasonOutcomeUnknown,
	}
	switch {
	case v.State != workflows.SendSent:
		j.problem = fmt.Sprintf("ended %s %s", v.State, v.Reason)
	case t.accepted != 1 || t.delivered != 1 || t.inSentItems != 1 || t.elsewhere != 0:
		j.problem = fmt.Sprintf("%d accepted, %d delivered, %d in Sent Items, %d elsewhere", t.accepted, t.delivered, t.inSentItems, t.elsewhere)
	case v.MessageID == "" || v.MessageID != t.sentItemID:
		j.problem = fmt.Sprintf("message_id %q, its Sent Items copy is %q", v.MessageID, t.sentItemID)
	}
	return j
}
