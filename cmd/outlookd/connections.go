package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const connectionsUsage = `Usage:
  outlookd connections list [--state STATE] [--json]
  outlookd connections show CONNECTION_ID [--json]
  outlookd connections resync CONNECTION_ID
  outlookd connections reauthorize CONNECTION_ID [--login-hint ADDRESS]
  outlookd connections repair CONNECTION_ID [--mailbox MAILBOX_ID]
  outlookd connections disconnect CONNECTION_ID
  outlookd connections sends CONNECTION_ID [--state queued|sending|...] [--json]

Operates on connections through outlookd's own HTTP API, with an admin API key
of the organisation:
  list         every connection of the organisation (all pages), optionally
               only those in one state (e.g. --state reauth_required)
  show         status, state and reason, mailboxes, sync mode, backfill progress
  resync       re-reads the mailbox from Graph (POST /v1/connections/{id}/resync)
  reauthorize  prints a fresh sign-in link to send to the mailbox's user
  repair       starts again the workflow of a connection whose workflow was
               terminated (or failed) in Temporal (POST .../repair); with
               --mailbox, that of one of its mailboxes (a shared mailbox of a
               service account, or a mailbox of an application connection)
  disconnect   disconnects it as DELETE /v1/connections/{id} does (also one whose
               workflow was terminated); 'outlookd disconnect' does the same
               without the API, from the registry and Temporal
  sends        the connection's sends (all pages), newest first, optionally in one
               state; a queued send whose NOT BEFORE is long past is stuck

Every subcommand takes:
  --api-url URL        the API's base URL (default $OUTLOOKD_API_URL)
  --api-key-file FILE  a file holding the admin API key (default: $OUTLOOKD_API_KEY)
  --timeout D          bound on each request (default 30s)
`

// apiClient calls outlookd's HTTP API with an API key, which it never
// prints.
type apiClient struct {
	base string
	key  string
	http *http.Client
}

// apiError is a problem the API answered.
type apiError struct {
	Status int
	Code   string
	Detail string
}

func (e *apiError) Error() string {
	switch {
	case e.Code == "user_required" || e.Code == "admin_required":
		return "the API key is not an admin key of the organisation (" + strconv.Itoa(e.Status) + " " + e.Code + "): outlookd connections needs one (outlookd apikey create --admin)"
	case e.Status == http.StatusUnauthorized:
		return "the API refused the API key (401 " + e.Code + "): check OUTLOOKD_API_KEY or --api-key-file"
	case e.Status == http.StatusNotFound:
		return cmp.Or(e.Detail, "not found") + " (404 " + e.Code + ")"
	}
	return fmt.Sprintf("%s (%d %s)", cmp.Or(e.Detail, http.StatusText(e.Status)), e.Status, e.Code)
}

// do sends a request and decodes a 2xx answer into out (nil: ignored).
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return fmt.Errorf("the API URL %q: %w", a.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		// The URL in the error is the base and path: no key is in it.
		var dnsErr *net.DNSError
		var opErr *net.OpError
		if errors.As(err, &dnsErr) || errors.As(err, &opErr) {
			return fmt.Errorf("cannot reach the API at %s: %w (check OUTLOOKD_API_URL or --api-url)", a.base, err)
		}
		return fmt.Errorf("%s %s: %w", method, a.base+path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var p struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		}
		if json.Unmarshal(raw, &p) != nil || p.Code == "" {
			// Not outlookd's API answering (a wrong URL, a proxy).
			return fmt.Errorf("%s %s answered %d without an outlookd problem: is %s outlookd's API? (check OUTLOOKD_API_URL or --api-url)",
				method, path, resp.StatusCode, a.base)
		}
		return &apiError{Status: resp.StatusCode, Code: p.Code, Detail: p.Detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not outlookd's JSON (is %s outlookd's API?): %w", method, path, a.base, err)
	}
	return nil
}

// connectionView is the part of a connection the commands print.
type connectionView struct {
	ID         string `json:"id"`
	Kind       string `json:"kind"`
	Owner      string `json:"owner"`
	State      string `json:"state"`
	Reason     string `json:"reason"`
	ReasonText string `json:"reason_text"`
	Mailbox    string `json:"mailbox"`
	TenantID   string `json:"tenant_id"`
	SyncMode   string `json:"sync_mode"`
	PollReason string `json:"poll_reason"`
	Behind     bool   `json:"behind"`
	Source     string `json:"source"`
	Messages   int64  `json:"message_count"`
	NextAction string `json:"next_action"`
	// NextActionAt and LastSyncAt are RFC 3339 times.
	NextActionAt *time.Time `json:"next_action_at"`
	LastSyncAt   *time.Time `json:"last_sync_at"`
	AuthorizeURL string     `json:"authorize_url"`
	Backfill     *struct {
		Running     bool       `json:"running"`
		Fetched     int64      `json:"fetched"`
		Total       int64      `json:"total"`
		Percent     *float64   `json:"percent"`
		CompletedAt *time.Time `json:"completed_at"`
		Missing     []string   `json:"missing_folders"`
	} `json:"backfill"`
	Contacts *struct {
		LastError string `json:"last_error"`
	} `json:"contacts"`
	AdminConsent *struct {
		URL string `json:"url"`
	} `json:"admin_consent"`
}

// mailboxView is the part of an attached mailbox the commands print.
type mailboxView struct {
	ID         string     `json:"id"`
	Address    string     `json:"address"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	SyncMode   string     `json:"sync_mode"`
	Messages   int64      `json:"message_count"`
	LastSyncAt *time.Time `json:"last_sync_at"`
}

// connectionsCmd is the operators' command over the API.
func connectionsCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprint(stderr, connectionsUsage)
		return usageError{errors.New("connections needs a subcommand")}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("connections "+sub, stderr)
	fs.Usage = func() { fmt.Fprint(stderr, connectionsUsage) }
	env := envMap(environ)
	apiURL := fs.String("api-url", env["OUTLOOKD_API_URL"], "the API's base URL")
	keyFile := fs.String("api-key-file", "", "a file holding the admin API key")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each request")
	asJSON, state, hint, mailbox := new(bool), new(string), new(string), new(string)
	needID := true
	switch sub {
	case "list":
		needID = false
		fs.BoolVar(asJSON, "json", false, "print JSON")
		fs.StringVar(state, "state", "", "only connections in this state")
	case "show":
		fs.BoolVar(asJSON, "json", false, "print JSON")
	case "sends":
		fs.BoolVar(asJSON, "json", false, "print JSON")
		fs.StringVar(state, "state", "", "only sends in this state")
	case "reauthorize":
		fs.StringVar(hint, "login-hint", "", "the account to pre-fill on Microsoft's sign-in page")
	case "repair":
		fs.StringVar(mailbox, "mailbox", "", "repair this mailbox's workflow instead of the connection's")
	case "resync", "disconnect":
	case "help", "-h", "--help":
		fmt.Fprint(stdout, connectionsUsage)
		return nil
	default:
		fmt.Fprintf(stderr, "outlookd connections: unknown subcommand %q\n\n%s", sub, connectionsUsage)
		return usageError{fmt.Errorf("unknown subcommand %q", sub)}
	}
	id, err := parseWithID(fs, args, needID)
	if err != nil {
		return err
	}
	a, err := newAPIClient(*apiURL, *keyFile, env["OUTLOOKD_API_KEY"], *timeout)
	if err != nil {
		return err
	}
	path := "/v1/connections/" + url.PathEscape(id)
	switch sub {
	case "list":
		return listConnections(ctx, a, stdout, *state, *asJSON)
	case "show":
		return showConnection(ctx, a, stdout, id, *asJSON)
	case "sends":
		return listSends(ctx, a, stdout, id, *state, *asJSON)
	case "resync":
		var c connectionView
		if err := a.do(ctx, http.MethodPost, path+"/resync", nil, &c); err != nil {
			return fmt.Errorf("resync %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "%s: resync started (state %s).\n", id, c.State)
	case "reauthorize":
		var body any
		if *hint != "" {
			body = map[string]string{"login_hint": *hint}
		}
		var c connectionView
		if err := a.do(ctx, http.MethodPost, path+"/reauthorize", body, &c); err != nil {
			return fmt.Errorf("reauthorize %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "Send this sign-in link to the mailbox's user (valid for an hour):\n%s\n", c.AuthorizeURL)
	case "repair":
		if *mailbox != "" {
			var m mailboxView
			if err := a.do(ctx, http.MethodPost, path+"/mailboxes/"+url.PathEscape(*mailbox)+"/repair", nil, &m); err != nil {
				return fmt.Errorf("repair mailbox %s of %s: %w", *mailbox, id, err)
			}
			fmt.Fprintf(stdout, "%s (%s): its workflow runs again (state %s).\n", m.ID, m.Address, m.State)
			return nil
		}
		var c connectionView
		if err := a.do(ctx, http.MethodPost, path+"/repair", nil, &c); err != nil {
			return fmt.Errorf("repair %s: %w", id, err)
		}
		fmt.Fprintf(stdout, "%s: its workflow runs again (state %s).\n", id, c.State)
		if c.AuthorizeURL != "" {
			fmt.Fprintf(stdout, "It was waiting for its first sign-in; send this link to the user:\n%s\n", c.AuthorizeURL)
		}
	case "disconnect":
		var c connectionView
		if err := a.do(ctx, http.MethodDelete, path, nil, &c); err != nil {
			return fmt.Errorf("disconnect %s: %w", id, err)
		}
		if c.State == "disconnected" {
			fmt.Fprintf(stdout, "%s is disconnected.\n", id)
		} else {
			fmt.Fprintf(stdout, "%s is disconnecting; 'outlookd connections show %s' shows when it is done.\n", id, id)
		}
	}
	return nil
}

// parseWithID parses the flags, before or after the one ID when the
// subcommand takes one.
func parseWithID(fs *flag.FlagSet, args []string, needID bool) (string, error) {
	if !needID {
		return "", parseFlags(fs, args)
	}
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
		if err := parseFlags(fs, args); err != nil {
			return "", err
		}
	} else {
		if err := fs.Parse(args); err != nil {
			return "", usageError{err}
		}
		if fs.NArg() != 1 {
			fmt.Fprintf(fs.Output(), "%s needs one connection ID\n", fs.Name())
			return "", usageError{errors.New("one connection ID needed")}
		}
		id = fs.Arg(0)
	}
	if id == "" {
		fmt.Fprintf(fs.Output(), "%s needs one connection ID\n", fs.Name())
		return "", usageError{errors.New("one connection ID needed")}
	}
	return id, nil
}

func newAPIClient(base, keyFile, envKey string, timeout time.Duration) (*apiClient, error) {
	if base == "" {
		return nil, errors.New("no API URL: set OUTLOOKD_API_URL or --api-url")
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("the API URL %q is not an http(s) URL", base)
	}
	if u.User != nil {
		return nil, errors.New("the API URL must not carry credentials; give the API key in OUTLOOKD_API_KEY or --api-key-file")
	}
	key := envKey
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("API key file: %w", err)
		}
		key = string(b)
	}
	key = strings.TrimSpace(key)
	if key == "" {
		return nil, errors.New("no API key: set OUTLOOKD_API_KEY or --api-key-file")
	}
	return &apiClient{base: strings.TrimSuffix(u.String(), "/"), key: key, http: &http.Client{Timeout: timeout}}, nil
}

// envMap reads a process environment.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// listConnections follows the list's pages and prints the connections
// (in the state asked, when one is).
func listConnections(ctx context.Context, a *apiClient, stdout io.Writer, state string, asJSON bool) error {
	var raws []json.RawMessage
	var views []connectionView
	cursor := ""
	for {
		q := url.Values{"limit": {"200"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := a.do(ctx, http.MethodGet, "/v1/connections?"+q.Encode(), nil, &page); err != nil {
			return fmt.Errorf("list connections: %w", err)
		}
		for _, r := range page.Data {
			var v connectionView
			if err := json.Unmarshal(r, &v); err != nil {
				return fmt.Errorf("list connections: %w", err)
			}
			if state != "" && v.State != state {
				continue
			}
			raws, views = append(raws, r), append(views, v)
		}
		if page.NextCursor == "" || page.NextCursor == cursor {
			break
		}
		cursor = page.NextCursor
	}
	if asJSON {
		if raws == nil {
			raws = []json.RawMessage{}
		}
		return writeJSON(stdout, raws)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tREASON\tMAILBOX\tSYNC\tLAST SYNC\tMESSAGES")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", v.ID, v.Kind, v.State, dash(v.Reason), dash(v.Mailbox), dash(v.SyncMode), when(v.LastSyncAt), v.Messages)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(views) == 0 && state != "" {
		fmt.Fprintf(stdout, "(no connection in state %s)\n", state)
	}
	return nil
}

// showConnection prints one connection and its attached mailboxes.
func showConnection(ctx context.Context, a *apiClient, stdout io.Writer, id string, asJSON bool) error {
	path := "/v1/connections/" + url.PathEscape(id)
	var raw json.RawMessage
	if err := a.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return fmt.Errorf("show %s: %w", id, err)
	}
	var c connectionView
	if err := json.Unmarshal(raw, &c); err != nil {
		return fmt.Errorf("show %s: %w", id, err)
	}
	var boxes struct {
		Data []json.RawMessage `json:"data"`
	}
	if c.Kind == "service_account" || c.Kind == "application" {
		if err := a.do(ctx, http.MethodGet, path+"/mailboxes", nil, &boxes); err != nil {
			return fmt.Errorf("mailboxes of %s: %w", id, err)
		}
	}
	if asJSON {
		out := map[string]any{"connection": raw}
		if boxes.Data != nil {
			out["mailboxes"] = boxes.Data
		}
		return writeJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	line("ID", c.ID)
	line("Kind", c.Kind)
	line("Owner", c.Owner)
	line("Mailbox", c.Mailbox)
	line("Tenant", c.TenantID)
	line("State", c.State)
	line("Reason", c.Reason)
	line("Last error", c.ReasonText)
	line("Status from", c.Source)
	sync := c.SyncMode
	if c.PollReason != "" {
		sync += " (" + c.PollReason + ")"
	}
	if c.Behind {
		sync += ", behind: a catch-up round is due"
	}
	line("Sync mode", sync)
	line("Last sync", when(c.LastSyncAt))
	line("Messages", strconv.FormatInt(c.Messages, 10))
	if b := c.Backfill; b != nil {
		progress := strconv.FormatInt(b.Fetched, 10) + " fetched"
		switch {
		case b.Running && b.Percent != nil:
			progress += fmt.Sprintf(" of %d (%.1f%%), running", b.Total, *b.Percent)
		case b.Running:
			progress += ", running"
		case b.CompletedAt != nil:
			progress += ", completed " + when(b.CompletedAt)
		}
		if len(b.Missing) > 0 {
			progress += "; missing folders: " + strings.Join(b.Missing, ", ")
		}
		line("Backfill", progress)
	}
	if c.Contacts != nil {
		line("Contacts error", c.Contacts.LastError)
	}
	if c.NextAction != "" {
		line("Next action", strings.TrimSpace(c.NextAction+" "+whenOpt(c.NextActionAt)))
	}
	if c.AdminConsent != nil {
		line("Admin consent link", c.AdminConsent.URL)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(boxes.Data) > 0 {
		fmt.Fprintln(stdout, "\nMailboxes:")
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tADDRESS\tSTATE\tREASON\tSYNC\tLAST SYNC\tMESSAGES")
		for _, r := range boxes.Data {
			var m mailboxView
			if err := json.Unmarshal(r, &m); err != nil {
				return fmt.Errorf("mailboxes of %s: %w", id, err)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", m.ID, dash(m.Address), m.State, dash(m.Reason), dash(m.SyncMode), when(m.LastSyncAt), m.Messages)
		}
		return tw.Flush()
	}
	return nil
}

// sendView is the part of a send the commands print (never its subject
// nor its recipients' addresses).
type sendView struct {
	ID         string     `json:"id"`
	MailboxID  string     `json:"mailbox_id"`
	State      string     `json:"state"`
	Reason     string     `json:"reason"`
	Recipients int        `json:"recipients"`
	NotBefore  *time.Time `json:"not_before"`
	UpdatedAt  *time.Time `json:"updated_at"`
}

// listSends follows the pages of a connection's sends.
func listSends(ctx context.Context, a *apiClient, stdout io.Writer, id, state string, asJSON bool) error {
	raws := []json.RawMessage{}
	cursor := ""
	for {
		q := url.Values{"limit": {"200"}}
		if state != "" {
			q.Set("state", state)
		}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := a.do(ctx, http.MethodGet, "/v1/connections/"+url.PathEscape(id)+"/sends?"+q.Encode(), nil, &page); err != nil {
			return fmt.Errorf("sends of %s: %w", id, err)
		}
		raws = append(raws, page.Data...)
		if page.NextCursor == "" || page.NextCursor == cursor {
			break
		}
		cursor = page.NextCursor
	}
	if asJSON {
		return writeJSON(stdout, raws)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tREASON\tMAILBOX\tRECIPIENTS\tNOT BEFORE\tUPDATED")
	for _, r := range raws {
		var v sendView
		if err := json.Unmarshal(r, &v); err != nil {
			return fmt.Errorf("sends of %s: %w", id, err)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", v.ID, v.State, dash(v.Reason), cmp.Or(v.MailboxID, "own"), v.Recipients, when(v.NotBefore), when(v.UpdatedAt))
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string { return cmp.Or(s, "-") }

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func whenOpt(t *time.Time) string {
	if t == nil {
		return ""
	}
	return "at " + t.UTC().Format(time.RFC3339)
}
