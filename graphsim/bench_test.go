package graphsim_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// BenchmarkDeltaPage measures the simulator serving 100-message delta pages
// over loopback HTTP (requests/s and messages/s), each worker on its own
// mailbox so Outlook's per-mailbox limits do not apply.
func BenchmarkDeltaPage(b *testing.B) {
	f := simtest.Start(b, graphsim.Options{MailboxRequests: 1 << 30})
	const workers = 4
	ctx := context.Background()
	var links []string
	for w := range workers {
		upn := fmt.Sprintf("bench%d@contoso.example", w)
		if _, err := f.Ctl.AddUser(ctx, graphsim.UserSpec{Tenant: "contoso.example", UPN: upn}); err != nil {
			b.Fatal(err)
		}
		if _, err := f.Sim.Generate(upn, graphsim.GenerateSpec{Count: 10000, Folders: []string{"inbox"}}); err != nil {
			b.Fatal(err)
		}
		// One token per mailbox; the initial delta URL of its inbox.
		tok := f.SignIn(b, upn, "offline_access", "Mail.Read").AccessToken
		links = append(links, tok+" "+f.Sim.GraphURL()+"/me/mailFolders/inbox/messages/delta")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers * 2}}
	var served atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	per := b.N/workers + 1
	for w := range workers {
		wg.Go(func() {
			var tok, start string
			fmt.Sscan(links[w], &tok, &start)
			for range per {
				req, _ := http.NewRequest("GET", start, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Prefer", "odata.maxpagesize=100")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || n < 10000 {
					b.Errorf("status %d, %d bytes", resp.StatusCode, n)
					return
				}
				served.Add(1)
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(served.Load())/el, "pages/s")
	b.ReportMetric(float64(served.Load())*100/el, "msgs/s")
}

// BenchmarkGenerate measures bulk injection of realistic messages.
func BenchmarkGenerate(b *testing.B) {
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sim.AddTenant(graphsim.TenantSpec{Domain: "bench.example"}); err != nil {
		b.Fatal(err)
	}
	if _, err := sim.AddUser(graphsim.UserSpec{Tenant: "bench.example", UPN: "u@bench.example"}); err != nil {
		b.Fatal(err)
	}
	const batch = 100000
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := sim.Generate("u@bench.example", graphsim.GenerateSpec{Count: batch}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkNotifications measures change notifications delivered to a fast
// receiver on loopback, from injection to receipt.
func BenchmarkNotifications(b *testing.B) {
	f := simtest.Start(b, graphsim.Options{})
	ctx := context.Background()
	base, got := countingReceiver(b)
	subscribeAda(b, f, map[string]any{"changeType": "created,updated,deleted", "notificationUrl": base + "/n", "lifecycleNotificationUrl": base + "/l"})
	const per = 1000
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if _, err := f.Sim.Generate("ada@contoso.example", graphsim.GenerateSpec{Count: per, Folders: []string{"inbox"}}); err != nil {
			b.Fatal(err)
		}
		for got.Load() < int64((i+1)*per) {
			time.Sleep(time.Millisecond)
		}
	}
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(got.Load())/el, "notifications/s")
	_ = ctx
}

// BenchmarkNotificationBehindBacklog measures how long one new message
// takes from injection to its notification while the endpoint has 600
// redeliveries scheduled for later (it was out of reach when they were
// first posted): new mail must not wait behind them.
func BenchmarkNotificationBehindBacklog(b *testing.B) {
	const backlog = 600
	f := simtest.Start(b, graphsim.Options{Subscriptions: graphsim.SubscriptionOptions{
		BatchWindow: time.Millisecond, RetryDelay: time.Hour, ThrottleDelay: time.Hour}})
	ctx := context.Background()
	base, got := countingReceiver(b)
	notifyURL := base + "/n"
	subscribeAda(b, f, map[string]any{"changeType": "created", "notificationUrl": notifyURL})
	if err := f.Ctl.SetEndpointReachable(ctx, notifyURL, false); err != nil {
		b.Fatal(err)
	}
	if _, err := f.Sim.Generate("ada@contoso.example", graphsim.GenerateSpec{Count: backlog, Folders: []string{"inbox"}}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if eps := f.Sim.Endpoints(); len(eps) == 1 && eps[0].Retrying == backlog {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("the backlog did not build: %+v", f.Sim.Endpoints())
		}
	}
	if err := f.Ctl.SetEndpointReachable(ctx, notifyURL, true); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.Sim.Generate("ada@contoso.example", graphsim.GenerateSpec{Count: 1, Folders: []string{"inbox"}}); err != nil {
			b.Fatal(err)
		}
		for got.Load() < int64(i+1) {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.StopTimer()
	if eps := f.Sim.Endpoints(); len(eps) != 1 || eps[0].Retrying != backlog {
		b.Errorf("the backlog went out early: %+v", eps)
	}
}

// countingReceiver serves a fast notification endpoint on loopback that
// counts the notifications it receives; it stops with the benchmark.
func countingReceiver(b *testing.B) (base string, got *atomic.Int64) {
	got = new(atomic.Int64)
	recv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, tok)
			return
		}
		var body struct {
			Value []json.RawMessage `json:"value"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		got.Add(int64(len(body.Value)))
		w.WriteHeader(http.StatusAccepted)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go recv.Serve(ln)
	b.Cleanup(func() { recv.Close() })
	return "http://" + ln.Addr().String(), got
}

// subscribeAda subscribes to Ada's mailbox with the given subscription
// fields, for two days.
func subscribeAda(b *testing.B, f *simtest.Tenant, fields map[string]any) {
	tok := f.SignIn(b, "ada@contoso.example", "offline_access", "Mail.Read").AccessToken
	fields["resource"] = "me/messages"
	fields["expirationDateTime"] = f.Sim.Clock().Now().Add(48 * time.Hour).Format(time.RFC3339)
	body, _ := json.Marshal(fields)
	req, _ := http.NewRequest("POST", f.Sim.GraphURL()+"/subscriptions", strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		b.Fatalf("subscribe: %v %v", resp, err)
	}
	resp.Body.Close()
}
