package workflows

import (
	"reflect"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Activity names. The activities package implements each as a method of
// that name; workflows call them only through the typed calls below, so
// this package never imports Graph, Vault or Postgres code.
const (
	ActivityExchangeCode        = "ExchangeCode"
	ActivityRefreshTokens       = "RefreshTokens"
	ActivityDiscoverFolders     = "DiscoverFolders"
	ActivityBackfillFolder      = "BackfillFolder"
	ActivityBackfillMailbox     = "BackfillMailbox"
	ActivityRecordState         = "RecordState"
	ActivitySyncFolders         = "SyncFolders"
	ActivityEnsureSubscription  = "EnsureSubscription"
	ActivityRenewSubscription   = "RenewSubscription"
	ActivityDeleteSubscriptions = "DeleteSubscriptions"
	ActivityPurgeSecrets        = "PurgeSecrets"
	ActivityApplyRetention      = "ApplyRetention"
	ActivityRecordEvent         = "RecordEvent"
	ActivityPrepareSend         = "PrepareSend"
	ActivitySubmitSend          = "SubmitSend"
	ActivityLocateSend          = "LocateSend"
	ActivityRecordSend          = "RecordSend"
	ActivitySendMailOnce        = "SendMailOnce"
	ActivitySendConnectionState = "SendConnectionState"
	ActivityWaitingSends        = "WaitingSends"
	ActivityFetchContactMail    = "FetchContactMail"
	ActivityApplyContactFilter  = "ApplyContactFilter"
	ActivityStripContent        = "StripContent"
)

// None is the result of an activity that returns only an error.
type None struct{}

// call is one activity as the workflows call it: its name, the options it
// runs with and, by its type parameters, what it takes and returns.
type call[I, O any] struct {
	name string
	opts workflow.ActivityOptions
}

// run executes the activity and waits for its result.
func (a call[I, O]) run(ctx workflow.Context, in I) (O, error) {
	var out O
	f := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, a.opts), a.name, in)
	if _, none := any(out).(None); none {
		return out, f.Get(ctx, nil)
	}
	return out, f.Get(ctx, &out)
}

// runLocal executes the activity as a local activity, inside the workflow
// task.
func (a call[I, O]) runLocal(ctx workflow.Context, opts workflow.LocalActivityOptions, in I) (O, error) {
	var out O
	f := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, opts), a.name, in)
	if _, none := any(out).(None); none {
		return out, f.Get(ctx, nil)
	}
	return out, f.Get(ctx, &out)
}

// with is the activity run with other options.
func (a call[I, O]) with(opts workflow.ActivityOptions) call[I, O] {
	a.opts = opts
	return a
}

// ActivitySpec is an activity's name and the types it takes and returns
// (Result is nil for an activity that returns only an error). The worker's
// tests check that every one is registered with exactly these types.
type ActivitySpec struct {
	Name   string
	Input  reflect.Type
	Result reflect.Type
}

func (a call[I, O]) spec() ActivitySpec {
	s := ActivitySpec{Name: a.name, Input: reflect.TypeFor[I](), Result: reflect.TypeFor[O]()}
	if s.Result == reflect.TypeFor[None]() {
		s.Result = nil
	}
	return s
}

// Option presets, named once.
var (
	// bookkeeping writes to the registry: short, retried until done.
	bookkeeping = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: time.Minute},
	}
	// consent exchanges a code: a few attempts, then the user is told.
	// The workflow waits for a cancelled exchange to end, so a disconnect
	// never purges Vault while an exchange may still write tokens.
	consent = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 30 * time.Second, MaximumAttempts: 10},
	}
	// tokenUpkeep refreshes tokens, patiently.
	tokenUpkeep = workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: 5 * time.Second, MaximumInterval: 10 * time.Minute},
	}
	// settingsWrite is a registry write of settings an update changed:
	// bounded, so the update answers within the API's wait whether the
	// registry took them (otherwise the workflow keeps the old ones).
	settingsWrite = workflow.ActivityOptions{
		ScheduleToCloseTimeout: 8 * time.Second,
		RetryPolicy:            &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 2 * time.Second},
	}
	// sagaStep is a step of the disconnect saga: retried until done.
	sagaStep = workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute},
	}
	// submitOnce is a draft's send: one attempt, never retried by
	// Temporal, whatever happened (docs/graph.md#ambiguous-send-answers).
	// The workflow sorts the answer, or its absence, and looks in the
	// mailbox before anything else.
	submitOnce = workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 1},
	}
	// discovery lists a mailbox's folders.
	discovery = graphCall(2 * time.Minute)
)

// graphCall is the options of activities that call Graph: retried until
// done (the activity marks dead tokens and refusals non-retryable), and
// waited for when cancelled, so nothing writes after a disconnect began.
func graphCall(timeout time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    time.Minute,
		WaitForCancellation: true,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumInterval: 5 * time.Minute},
	}
}

// liveRound is a graphCall whose retries stay at most 30 s apart: a round
// is what brings a mailbox up to date, so one that failed through an
// outage (Vault, Postgres, Graph gone) runs again within 30 s of the
// recovery rather than up to 5 minutes after it. Graph's throttling sets
// its own delays (Retry-After, as NextRetryDelay), which this does not cap.
func liveRound() workflow.ActivityOptions {
	o := graphCall(10 * time.Minute)
	o.RetryPolicy.MaximumInterval = 30 * time.Second
	return o
}

// folderBudget is how long one BackfillFolder activity pages before it
// reports progress and yields.
const folderBudget = 45 * time.Second

// inlineBudget is how long a backfill's first activity (BackfillMailbox)
// pages before what is left goes to a child. Most mailboxes are done well
// within it; a large one shows its folders' progress from then on, as the
// child tells it page by page.
const inlineBudget = 15 * time.Second

// backfillPage is the options of a backfill page activity, whose heartbeat
// timeout the connection chooses.
func backfillPage(heartbeat time.Duration) workflow.ActivityOptions {
	o := graphCall(folderBudget + 2*time.Minute)
	if heartbeat > 0 {
		o.HeartbeatTimeout = heartbeat
	}
	return o
}

// The activities, typed.
var (
	exchangeCode        = call[ExchangeCodeInput, ExchangeCodeResult]{ActivityExchangeCode, consent}
	refreshTokens       = call[RefreshInput, RefreshResult]{ActivityRefreshTokens, tokenUpkeep}
	recordState         = call[RecordStateInput, None]{ActivityRecordState, bookkeeping}
	recordEvent         = call[RecordEventInput, None]{ActivityRecordEvent, bookkeeping}
	discoverFolders     = call[DiscoverFoldersInput, DiscoverFoldersResult]{ActivityDiscoverFolders, discovery}
	backfillFolder      = call[BackfillFolderInput, BackfillFolderResult]{ActivityBackfillFolder, backfillPage(0)}
	backfillMailbox     = call[BackfillMailboxInput, BackfillMailboxResult]{ActivityBackfillMailbox, backfillPage(0)}
	syncFolders         = call[SyncFoldersInput, SyncFoldersResult]{ActivitySyncFolders, liveRound()}
	ensureSubscription  = call[EnsureSubscriptionInput, SubscriptionResult]{ActivityEnsureSubscription, graphCall(2 * time.Minute)}
	renewSubscription   = call[RenewSubscriptionInput, SubscriptionResult]{ActivityRenewSubscription, graphCall(time.Minute)}
	deleteSubscriptions = call[ConnectionRef, None]{ActivityDeleteSubscriptions, sagaStep}
	purgeSecrets        = call[ConnectionRef, int]{ActivityPurgeSecrets, sagaStep}
	applyRetention      = call[RetentionInput, None]{ActivityApplyRetention, sagaStep}
	prepareSend         = call[SendRef, PrepareSendResult]{ActivityPrepareSend, graphCall(5 * time.Minute)}
	submitSend          = call[SubmitSendInput, SubmitSendResult]{ActivitySubmitSend, submitOnce}
	locateSend          = call[SendRef, LocateSendResult]{ActivityLocateSend, graphCall(2 * time.Minute)}
	recordSend          = call[RecordSendInput, None]{ActivityRecordSend, bookkeeping}
	sendMailOnce        = call[SendMailInput, SubmitSendResult]{ActivitySendMailOnce, submitOnce}
	sendConnection      = call[SendStateInput, SendConnectionResult]{ActivitySendConnectionState, bookkeeping}
	waitingSends        = call[WaitingSendsInput, WaitingSendsResult]{ActivityWaitingSends, sagaStep}
	fetchContactMail    = call[FetchContactMailInput, FetchContactMailResult]{ActivityFetchContactMail, graphCall(10 * time.Minute)}
	applyContactFilter  = call[ContactFilterInput, ContactFilterResult]{ActivityApplyContactFilter, sagaStep}
	stripContent        = call[StripContentInput, StripContentResult]{ActivityStripContent, sagaStep}
)

// Activities lists every activity the workflows call, with its types.
func Activities() []ActivitySpec {
	return append([]ActivitySpec{
		exchangeCode.spec(), refreshTokens.spec(), recordState.spec(), recordEvent.spec(), discoverFolders.spec(),
		backfillFolder.spec(), backfillMailbox.spec(), syncFolders.spec(), ensureSubscription.spec(), renewSubscription.spec(),
		deleteSubscriptions.spec(), purgeSecrets.spec(), applyRetention.spec(), checkMailbox.spec(), registerMailbox.spec(),
		prepareSend.spec(), submitSend.spec(), locateSend.spec(), recordSend.spec(), sendMailOnce.spec(), sendConnection.spec(),
		waitingSends.spec(),
		fetchContactMail.spec(), applyContactFilter.spec(), stripContent.spec(),
	}, applicationActivities()...)
}
