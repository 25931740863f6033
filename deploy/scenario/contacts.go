package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/outlookd/outlookd/graphsim"
	"github.com/outlookd/outlookd/workflows"
)

// contactsState is what the scenario reads of a connection's contacts.
type contactsState struct {
	Contacts *struct {
		Fetching      bool    `json:"fetching"`
		Waiting       int64   `json:"waiting"`
		LastFetchedAt *string `json:"last_fetched_at"`
	} `json:"contacts"`
}

// addContacts adds contacts and waits until their past mail is fetched
// (the connection's last fetch ended after the request), answering how
// long that took.
func (w *world) addContacts(id string, addrs []string) (time.Duration, error) {
	var before contactsState
	if _, err := w.call("GET", "/v1/connections/"+id, nil, &before); err != nil {
		return 0, err
	}
	last := ""
	if before.Contacts != nil && before.Contacts.LastFetchedAt != nil {
		last = *before.Contacts.LastFetchedAt
	}
	body := make([]map[string]string, 0, len(addrs))
	for _, a := range addrs {
		body = append(body, map[string]string{"address": a})
	}
	start := time.Now()
	if st, err := w.call("POST", "/v1/connections/"+id+"/contacts", map[string]any{"contacts": body}, nil); err != nil || st != 200 {
		return 0, fmt.Errorf("add %d contacts: %d %v", len(addrs), st, err)
	}
	err := waitFor(10*time.Minute, func() error {
		var s contactsState
		if _, err := w.call("GET", "/v1/connections/"+id, nil, &s); err != nil {
			return err
		}
		k := s.Contacts
		if k == nil || k.Fetching || k.Waiting != 0 || k.LastFetchedAt == nil || *k.LastFetchedAt == last {
			return fmt.Errorf("the contacts' past mail is not fetched yet")
		}
		return nil
	})
	return time.Since(start), err
}

// compareFiltered counts what Postgres lacks, and what it holds beyond,
// graphsim's ground truth filtered as the contact filter does: the synced
// folders' messages since the window from or to (sender, To, Cc) a
// contact.
func (w *world) compareFiltered(ctx context.Context, id, user string, since time.Time, contacts map[string]bool) (lost, extra, want int, err error) {
	truth, err := w.sim.GroundTruth(ctx, user)
	if err != nil {
		return 0, 0, 0, err
	}
	rows, err := w.st.Pool().Query(ctx, `SELECT id FROM folders WHERE mailbox_id = $1`, id)
	if err != nil {
		return 0, 0, 0, err
	}
	synced := map[string]bool{}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return 0, 0, 0, err
		}
		synced[f] = true
	}
	rows.Close()
	wanted := map[string]bool{}
	for _, m := range truth.Messages {
		if !synced[m.FolderID] || m.Received.Before(since) {
			continue
		}
		match := contacts[strings.ToLower(m.From.Address)]
		for _, r := range append(append([]graphsim.Recipient(nil), m.To...), m.Cc...) {
			match = match || contacts[strings.ToLower(r.Address)]
		}
		if match {
			wanted[m.ImmutableID] = true
		}
	}
	msgs, err := w.st.Messages(ctx, id)
	if err != nil {
		return 0, 0, 0, err
	}
	have := map[string]bool{}
	for _, m := range msgs {
		have[m.ID] = true
		if !wanted[m.ID] {
			extra++
		}
	}
	for mid := range wanted {
		if !have[mid] {
			lost++
		}
	}
	return lost, extra, len(wanted), nil
}

// contactFilter: a mailbox of size messages synced with the contact filter;
// 200 contacts at first, 50 added and 20 removed with their mail while mail
// arrives; compared with the filtered ground truth (the added contacts' past
// mail in it), and the time one added contact's past mail takes against a
// full backfill of the same mailbox.
func contactFilter(ctx context.Context, w *world, size int) (result, error) {
	var r result
	if _, err := w.sim.Generate(ctx, adele, graphsim.GenerateSpec{Count: size, Days: 25, Folders: workflows.DefaultFolders, Seed: 21, Correspondents: 400}); err != nil {
		return r, err
	}
	truth, err := w.sim.GroundTruth(ctx, adele)
	if err != nil {
		return r, err
	}
	seen := map[string]bool{strings.ToLower(adele): true}
	var people []string
	for _, m := range truth.Messages {
		for _, rc := range append(append([]graphsim.Recipient{m.From}, m.To...), m.Cc...) {
			if a := strings.ToLower(rc.Address); a != "" && !seen[a] {
				seen[a] = true
				people = append(people, a)
			}
		}
	}
	slices.Sort(people)
	const initial, added, removedN = 200, 50, 20
	if len(people) < initial+added+1 {
		return r, fmt.Errorf("only %d correspondents; the scenario needs %d", len(people), initial+added+1)
	}
	first, later, one := people[:initial], people[initial:initial+added], people[initial+added]

	start := time.Now()
	c, err := w.connect(adele, map[string]any{"backfill_days": 30, "contact_filter": true})
	if err != nil {
		return r, err
	}
	backfill := time.Since(start)
	since := covered(c)
	contacts := map[string]bool{}
	d, err := w.addContacts(c.ID, first)
	if err != nil {
		return r, err
	}
	for _, a := range first {
		contacts[a] = true
	}
	r.add("fetch_200_s", fmt.Sprintf("%.1f", d.Seconds()))

	// Live mail from contacts and strangers while 50 are added and 20
	// removed with their mail.
	var live []graphsim.MessageSpec
	for i := range 40 {
		from := people[(i*7)%len(people)]
		live = append(live, graphsim.MessageSpec{Subject: fmt.Sprintf("live %d", i), From: graphsim.Recipient{Address: strings.ToUpper(from[:1]) + from[1:]}})
	}
	if _, err := w.sim.InjectMessages(ctx, adele, live[:20]...); err != nil {
		return r, err
	}
	d, err = w.addContacts(c.ID, later)
	if err != nil {
		return r, err
	}
	for _, a := range later {
		contacts[a] = true
	}
	r.add("fetch_50_s", fmt.Sprintf("%.1f", d.Seconds()))
	removed := first[:removedN]
	var rm struct {
		Removed         int64 `json:"removed"`
		MessagesDeleted int64 `json:"messages_deleted"`
	}
	if st, err := w.call("POST", "/v1/connections/"+c.ID+"/contacts/remove", map[string]any{"addresses": removed, "mail": "delete"}, &rm); err != nil || st != 200 || rm.Removed != removedN {
		return r, fmt.Errorf("remove %d contacts: %d %v %+v", removedN, st, err, rm)
	}
	for _, a := range removed {
		delete(contacts, a)
	}
	r.add("deleted_with_contacts", rm.MessagesDeleted)
	if _, err := w.sim.InjectMessages(ctx, adele, live[20:]...); err != nil {
		return r, err
	}
	// One more contact: the time its past mail takes.
	d, err = w.addContacts(c.ID, []string{one})
	if err != nil {
		return r, err
	}
	contacts[one] = true
	r.add("one_contact_s", fmt.Sprintf("%.2f", d.Seconds()))
	r.add("full_backfill_s", fmt.Sprintf("%.1f", backfill.Seconds()))

	var want int
	err = waitFor(2*time.Minute, func() error {
		var err error
		r.lost, r.dup, want, err = w.compareFiltered(ctx, c.ID, adele, since, contacts)
		if err == nil && (r.lost != 0 || r.dup != 0) {
			err = fmt.Errorf("lost=%d extra=%d against the filtered truth", r.lost, r.dup)
		}
		return err
	})
	r.add("stored", want)
	r.add("contacts", len(contacts))
	if err != nil {
		return r, err
	}
	// The 50 added contacts' past mail (the mailbox's mail before the
	// connection, which the backfill kept out) is all stored.
	past, missing, perr := w.pastMail(ctx, c.ID, truth, since, later)
	if perr != nil {
		return r, perr
	}
	r.add("added_contacts_past_mail", past)
	if missing != 0 || past == 0 {
		return r, fmt.Errorf("%d of the added contacts' %d past messages are missing", missing, past)
	}
	if n := w.events(c.ID, "contacts.fetched"); n < 3 {
		return r, fmt.Errorf("%d contacts.fetched events, want at least 3", n)
	}
	// A full re-backfill of the same mailbox (every folder re-anchored: a
	// full scan of the window), for the one contact's time to be set
	// against; it changes nothing stored.
	d, err = w.rebackfill(ctx, c.ID)
	if err != nil {
		return r, err
	}
	r.add("rebackfill_s", fmt.Sprintf("%.1f", d.Seconds()))
	lost, extra, _, err := w.compareFiltered(ctx, c.ID, adele, since, contacts)
	if err == nil && (lost != 0 || extra != 0) {
		err = fmt.Errorf("after the re-backfill: lost=%d extra=%d against the filtered truth", lost, extra)
	}
	r.lost, r.dup = r.lost+lost, r.dup+extra
	return r, err
}

// rebackfill re-anchors every folder of a connection (POST resync with
// folders "*") and answers how long until the workflow has re-anchored them
// all, as its status query says.
func (w *world) rebackfill(ctx context.Context, id string) (time.Duration, error) {
	tc, err := w.temporal()
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	status := func() (workflows.Status, error) {
		var st workflows.Status
		v, err := tc.QueryWorkflow(ctx, workflows.ConnectionWorkflowID(id), "", workflows.QueryStatus)
		if err == nil {
			err = v.Get(&st)
		}
		return st, err
	}
	before, err := status()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if st, err := w.call("POST", "/v1/connections/"+id+"/resync", map[string]any{"folders": []string{"*"}}, nil); err != nil || st != 202 {
		return 0, fmt.Errorf("resync every folder: %d %v", st, err)
	}
	err = waitFor(10*time.Minute, func() error {
		st, err := status()
		if err != nil {
			return err
		}
		if st.Sync.Reanchored < before.Sync.Reanchored+len(workflows.DefaultFolders) || len(st.Pending.Reanchor) > 0 {
			return fmt.Errorf("re-backfill: %d folders re-anchored, %v pending", st.Sync.Reanchored-before.Sync.Reanchored, st.Pending.Reanchor)
		}
		return nil
	})
	return time.Since(start), err
}

// pastMail counts the messages of an earlier ground truth (in the synced
// folders, since the window) from or to one of addrs, and those Postgres
// lacks.
func (w *world) pastMail(ctx context.Context, id string, truth *graphsim.Truth, since time.Time, addrs []string) (past, missing int, err error) {
	set := map[string]bool{}
	for _, a := range addrs {
		set[a] = true
	}
	synced := map[string]bool{}
	rows, err := w.st.Pool().Query(ctx, `SELECT id FROM folders WHERE mailbox_id = $1`, id)
	if err != nil {
		return 0, 0, err
	}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return 0, 0, err
		}
		synced[f] = true
	}
	rows.Close()
	msgs, err := w.st.Messages(ctx, id)
	if err != nil {
		return 0, 0, err
	}
	have := map[string]bool{}
	for _, m := range msgs {
		have[m.ID] = true
	}
	for _, m := range truth.Messages {
		if !synced[m.FolderID] || m.Received.Before(since) {
			continue
		}
		match := set[strings.ToLower(m.From.Address)]
		for _, r := range append(append([]graphsim.Recipient(nil), m.To...), m.Cc...) {
			match = match || set[strings.ToLower(r.Address)]
		}
		if match {
			past++
			if !have[m.ImmutableID] {
				missing++
			}
		}
	}
	return past, missing, nil
}
