package conformance_test

import (
	"context"
	"sync"
	"testing"
	"time"

	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/graphsim/simtest"
)

// TestSDKBatchThrottling sends batches through msgraph-sdk-go-core's batch
// support: a batch sent while other requests hold the mailbox's four slots
// answers 200 with a 429 and Retry-After per item, the SDK finds each answer
// by id whatever the order, and a batch alone never exceeds the mailbox.
func TestSDKBatchThrottling(t *testing.T) {
	st := simtest.Start(t, graphsim.Options{})
	ctx := context.Background()
	c := newClient(t, st, "ada@contoso.example", "Mail.Read", "User.Read")
	specs := make([]graphsim.MessageSpec, 3)
	for i := range specs {
		specs[i].Subject = "batched"
	}
	if _, err := st.Ctl.InjectMessages(ctx, st.Ada.UPN, specs...); err != nil {
		t.Fatal(err)
	}
	top := int32(1)
	listInfo, err := c.Me().Messages().ToGetRequestInformation(ctx, &users.ItemMessagesRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.ItemMessagesRequestBuilderGetQueryParameters{Top: &top}})
	if err != nil {
		t.Fatal(err)
	}

	// Four slow folder requests hold every slot of Ada's mailbox. The
	// client has its token first, and the slots are held long enough for
	// a loaded machine (every package's tests at once, beside the test
	// stack's servers, on two cores) to see them held.
	if _, err := c.Me().MailFolders().Get(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st.Sim.SetFault(graphsim.Fault{Endpoint: "folders", Latency: 30 * time.Second})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { _, _ = c.Me().MailFolders().Get(ctx, nil) })
	}
	deadline := time.Now().Add(25 * time.Second)
	for {
		_, err := c.Me().Messages().Get(ctx, nil)
		if ge, ok := graph.AsError(err); ok && ge.Status == 429 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow requests never held the mailbox")
		}
		time.Sleep(10 * time.Millisecond)
	}
	held := msgraphcore.NewBatchRequest(c.Adapter)
	var ids []string
	for range 3 {
		it, err := held.AddBatchRequestStep(*listInfo)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *it.GetId())
	}
	resp, err := held.Send(ctx, c.Adapter)
	if err != nil {
		t.Fatalf("a batch with throttled items must answer 200: %v", err)
	}
	for _, id := range ids {
		item := resp.GetResponseById(id)
		if item == nil || *item.GetStatus() != 429 || item.GetHeaders()["Retry-After"] != "1" {
			t.Errorf("item %s: %+v", id, item)
		}
		// The SDK does not retry a throttled item; the caller sees it.
		if _, err := msgraphcore.GetBatchResponseById[models.MessageCollectionResponseable](resp, id, models.CreateMessageCollectionResponseFromDiscriminatorValue); err == nil {
			t.Errorf("item %s: a throttled item parsed as a message list", id)
		}
	}
	wg.Wait()
	st.Sim.ClearFaults()

	// On its own, a batch of 25 slow requests (two batches for the SDK)
	// stays within the mailbox: four at a time.
	st.Sim.SetFault(graphsim.Fault{Endpoint: "messages", Latency: 50 * time.Millisecond})
	coll := msgraphcore.NewBatchRequestCollection(c.Adapter)
	ids = ids[:0]
	for range 25 {
		it, err := coll.AddBatchRequestStep(*listInfo)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, *it.GetId())
	}
	all, err := coll.Send(ctx, c.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		page, err := msgraphcore.GetBatchResponseById[models.MessageCollectionResponseable](all, id, models.CreateMessageCollectionResponseFromDiscriminatorValue)
		if err != nil || len(page.GetValue()) != 1 || *page.GetValue()[0].GetSubject() != "batched" {
			t.Errorf("item %s: %v %v", id, page, err)
		}
	}
	st.Sim.ClearFaults()

	// dependsOn through the SDK: a chain set with SetDependsOn runs, and the
	// dependents of a failed request answer 424.
	missing, _ := c.Me().Messages().ByMessageId("AAMkADInope=").ToGetRequestInformation(ctx, nil)
	chained := msgraphcore.NewBatchRequest(c.Adapter)
	first, _ := chained.AddBatchRequestStep(*missing)
	second, _ := chained.AddBatchRequestStep(*listInfo)
	third, _ := chained.AddBatchRequestStep(*listInfo)
	second.SetDependsOn([]string{*first.GetId()})
	third.SetDependsOn([]string{*second.GetId()})
	resp, err = chained.Send(ctx, c.Adapter)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int32{*first.GetId(): 404, *second.GetId(): 424, *third.GetId(): 424} {
		if got := resp.GetResponseById(id).GetStatus(); got == nil || *got != want {
			t.Errorf("chained item %s: %v, want %d", id, got, want)
		}
	}
	// DependsOnItem copies the dependency's own dependencies: the third step
	// of a chain built with it depends on two requests, which Graph refuses.
	copied := msgraphcore.NewBatchRequest(c.Adapter)
	a, _ := copied.AddBatchRequestStep(*listInfo)
	b, _ := copied.AddBatchRequestStep(*listInfo)
	cc, _ := copied.AddBatchRequestStep(*listInfo)
	b.DependsOnItem(a)
	cc.DependsOnItem(b)
	_, err = copied.Send(ctx, c.Adapter)
	if ge, ok := graph.AsError(err); !ok || ge.Status != 400 {
		t.Errorf("a request with two dependencies: %v", err)
	}
}
