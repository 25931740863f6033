package workflows

// Versioning. A change to what a workflow does on replay (which commands
// it issues, in which order) must keep running histories replayable:
// guard it with workflow.GetVersion under a change ID listed here, record
// a new history in testdata/ (see replay_test.go) and keep the old ones
// until no run of them can exist. Remove a branch, and its ID here, only
// together with the histories that needed it.
//
// Change IDs in use:
//   - admin-consent-state: a sign-in refused until the tenant's
//     administrator approves the app moves the connection to
//     admin_consent_required (lifecycle.go, refusedState); before, the
//     connection kept its state with the reason.
//   - backfill-progress-upfront: the backfill child tells its parent
//     every folder (with Graph's total) before paging (backfill.go); before,
//     a folder appeared after its first page.
//   - send-slot-at-submit: a send takes its slot in its mailbox's rates
//     when it is submitted (SubmitSendInput.Rates), and reads the
//     connection and records its states as local activities (send.go);
//     before, its slot was taken by the API and every step was an
//     activity.
//   - app-mailbox-push: an application connection's mailbox is subscribed
//     to (subscribe, pollsOnly), subscribed to again when its access comes
//     back (onResync), asked to subscribe when a run continues one polled
//     for want of it (upgradeToPush), and deletes its subscription when
//     detached (saga.go, detach); before, it was polled only.
//   - disconnect-ends-sends: the disconnect saga tells the workflow of every
//     send waiting to go (queued, reauth_required) to cancel it
//     (saga.go, endWaitingSends); before, each learnt of it at its next
//     look at the connection, up to its time.
//   - send-end-signal: a send's waits (its time, a slot, a new sign-in)
//     end at the saga's signal (SignalSendEnded), which cancels it
//     (send.go); before, the waits ran their course.
//   - send-local-steps: a send's PrepareSend (a message without large
//     files) and its looks in the mailbox (LocateSend) run as local
//     activities (send.go); before, as activities.
//   - send-versions-at-once: a send started since takes the three changes
//     above at once under this one marker (send.go, versions), with one
//     TemporalChangeVersion upsert instead of three; runs started before
//     ask each as they did.
//     Version 2: the submission (SubmitSend, SendMailOnce) runs as a local
//     activity too, numbered (SubmitSendInput.Submission), the number
//     recorded with the send's slot so that a submission run again after
//     its worker died sends nothing (send.go, localSubmit); version 1
//     submits through an activity.
//     A send started with SendInput.Version (2 now, SendVersion) takes every
//     change up to it without asking GetVersion (no marker, no
//     TemporalChangeVersion upsert); the next change of the send workflow
//     raises SendVersion and reads in.Version instead of a new change ID.
//   - app-mailbox-client-start: an application connection starts its
//     joined mailboxes' workflows from an activity, through the Temporal
//     client (application.go, startJoined); before, as child workflows.
//   - backfill-progress-batched: the backfill child tells its parent the
//     folders' progress through one sender that the pages never wait for,
//     what came in meanwhile in one signal (BackfillProgress.Updates), and
//     does not wait for the signal of every folder's total either
//     (backfill.go); before, each page waited for its own signal.
//   - mailbox-backfill-inline: an attached mailbox's backfill begins with
//     one BackfillMailbox activity, and only what it left goes to the
//     backfill child (connection.go, startBackfill); before, all of it went
//     to the child.
//   - connection-backfill-inline: a connection's own backfill (a user's
//     mailbox) begins with one BackfillMailbox activity as an attached
//     mailbox's does (connection.go, backfillsInline); before, all of it
//     went to the child.
//   - steady-timer: an active connection or mailbox sleeps on one standing
//     timer, set again only for an earlier time (connection.go, alarm); a
//     notified round no longer starts one, and the timer it overtook no
//     longer fires for nothing later. Before, every sleep started its own
//     timer (workflow.AwaitWithTimeout).
//   - connection-versions-at-once: a connection's or a mailbox's run started
//     since asks this once at its start (atonce.go, versions) and takes
//     admin-consent-state, steady-timer, connection-backfill-inline, mailbox-backfill-inline,
//     app-mailbox-push, app-mailbox-client-start and disconnect-ends-sends
//     without asking for each (one marker and one TemporalChangeVersion
//     upsert instead of one of each per change), and with them: its
//     registry writes (RecordState, RecordEvent) run as local activities,
//     and it upserts only the search attributes that differ from those it
//     has (a workflow started with them, or carried over from its run
//     before, upserts none at its start). Runs started before ask each
//     change where they did, write through activities and upsert every
//     attribute each time.
//   - app-prefill: an application connection backfills its joining
//     mailboxes ahead of their workflows, in batches (PrefillMailboxes),
//     and starts a mailbox's workflow only once its mailbox was, handing
//     it the backfill (prefill.go; MailboxChangesInput.Prefilled,
//     MailboxInput.Backfilled); before, each mailbox's workflow backfilled
//     its mailbox. A mailbox's workflow needs no change ID for it: an
//     input without Backfilled keeps the old behaviour.
//   - app-starts-after-prefill: the mailboxes a backfill batch made ready
//     wait for the batch to end, two minutes at most, before their
//     workflows are started (startsWait); before, they were started while
//     it ran.
//   - app-end-mailboxes-at-once: the disconnect saga of an application
//     connection ends its mailboxes a page at a time in one activity
//     (EndMailboxes: each running workflow cancelled through the
//     client, each mailbox without one detached there); before, the
//     workflow asked each mailbox's workflow to cancel itself, one after
//     another, and detached by its own steps each mailbox whose request
//     failed.
//
// The histories in testdata/ were recorded before the first of them, but
// the two of an application connection's mailbox, run with the workflow
// tests' fake activities on a Temporal dev server:
// mailbox_application_polled.json by the code before app-mailbox-push,
// mailbox_application_pushed.json by the code that brought it; and the
// sends' (send_ended.json, send_sent.json, send_local.json), recorded by
// TestRecordSendHistories with the code that brought send-local-steps, and
// send_*_once.json by the same with the code that brought
// send-versions-at-once, send_*_submit.json with the code that brought
// its version 2, and send_*_given.json with the code that gave a send its
// version in its input; and an application connection's, recorded by
// TestApplicationConnectionSyncsTheTenant (connect):
// connection_application_children.json by the code before
// app-mailbox-client-start, connection_application.json by the code that
// brought it; and backfill_batched.json, recorded by TestConnectAndBackfill
// (connect) with the code that brought backfill-progress-batched; and
// mailbox_application_inline.json, an application connection's mailbox
// recorded by TestApplicationConnectionSyncsTheTenant with the code that
// brought mailbox-backfill-inline; and connection_inline.json and
// connection_live_steady.json, recorded by TestConnectAndBackfill and
// TestLiveSync (connect) with the code that brought steady-timer and
// connection-backfill-inline; and the *_once.json of a connection and a
// mailbox, recorded by the same four tests of connect
// (OUTLOOKD_RECORD_HISTORY=1, see replay_test.go) with the code that
// brought connection-versions-at-once; and connection_application_prefill.json
// and mailbox_application_prefill.json, recorded by
// TestApplicationConnectionSyncsTheTenant with the code that brought
// app-prefill; and connection_application_waits.json, recorded by the same
// with the code that brought app-starts-after-prefill, and
// connection_application_ends.json with the code that brought
// app-end-mailboxes-at-once.
//
// A change driven by a new field of an activity's result needs no change
// ID when the field's absence keeps the old behaviour: results recorded
// before it replay as they ran. So it is with the renewal time taken from
// the lifetime Graph granted (SubscriptionResult.Requested, renewalTime).
var changeIDs = []string{"admin-consent-state", "backfill-progress-upfront", "send-slot-at-submit", "app-mailbox-push", "disconnect-ends-sends", "send-end-signal", "send-local-steps", "app-mailbox-client-start", "backfill-progress-batched", "send-versions-at-once", "mailbox-backfill-inline", "steady-timer", "connection-backfill-inline", "connection-versions-at-once", "app-prefill", "app-starts-after-prefill", "app-end-mailboxes-at-once"}
