package graphsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client drives a simulator's control API over HTTP, in-process or
// standalone (`outlookd sim`).
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the simulator at baseURL. A nil hc uses a
// client with a 60 s timeout.
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), hc: hc}
}

// ControlError is an error answer of the control API.
type ControlError struct {
	Status  int
	Message string
}

func (e *ControlError) Error() string {
	return fmt.Sprintf("graphsim control: %d: %s", e.Status, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("graphsim control: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return &ControlError{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func userPath(user string) string { return "/_sim/users/" + url.PathEscape(user) }

// AddTenant creates a tenant.
func (c *Client) AddTenant(ctx context.Context, spec TenantSpec) (*Tenant, error) {
	var t Tenant
	return &t, c.do(ctx, "POST", "/_sim/tenants", spec, &t)
}

// AddApp registers an app; the result carries its secret.
func (c *Client) AddApp(ctx context.Context, spec AppSpec) (*App, error) {
	var a App
	return &a, c.do(ctx, "POST", "/_sim/apps", spec, &a)
}

// AddSecret adds a client secret to an app, as a new secret made in its
// app registration.
func (c *Client) AddSecret(ctx context.Context, clientID, value string, expires time.Time) error {
	return c.do(ctx, "POST", "/_sim/apps/"+url.PathEscape(clientID)+"/secrets", SecretSpec{Value: value, Expires: expires}, nil)
}

// AddGroup creates a group with members (users by ID or address, groups
// by ID).
func (c *Client) AddGroup(ctx context.Context, spec GroupSpec) (*Group, error) {
	var g Group
	return &g, c.do(ctx, "POST", "/_sim/groups", spec, &g)
}

// AddGroupMember adds a user or a group to a group.
func (c *Client) AddGroupMember(ctx context.Context, group, member string) error {
	return c.do(ctx, "POST", "/_sim/groups/"+url.PathEscape(group)+"/members", map[string]string{"member": member}, nil)
}

// RemoveGroupMember removes a direct member from a group.
func (c *Client) RemoveGroupMember(ctx context.Context, group, member string) error {
	return c.do(ctx, "DELETE", "/_sim/groups/"+url.PathEscape(group)+"/members/"+url.PathEscape(member), nil, nil)
}

// AddUser creates a user or shared mailbox.
func (c *Client) AddUser(ctx context.Context, spec UserSpec) (*User, error) {
	var u User
	return &u, c.do(ctx, "POST", "/_sim/users", spec, &u)
}

// GrantMailboxRights gives delegate rights on owner's mailbox.
func (c *Client) GrantMailboxRights(ctx context.Context, owner, delegate string, rights ...string) error {
	return c.do(ctx, "POST", userPath(owner)+"/rights", map[string]any{"delegate": delegate, "rights": rights}, nil)
}

// RevokeMailboxRights takes delegate's rights on owner's mailbox away (all
// of them when none are named).
func (c *Client) RevokeMailboxRights(ctx context.Context, owner, delegate string, rights ...string) error {
	return c.do(ctx, "POST", userPath(owner)+"/rights/revoke", map[string]any{"delegate": delegate, "rights": rights}, nil)
}

// MailboxRights lists the rights others hold on owner's mailbox, by
// delegate.
func (c *Client) MailboxRights(ctx context.Context, owner string) (map[string][]string, error) {
	var out map[string][]string
	return out, c.do(ctx, "GET", userPath(owner)+"/rights", nil, &out)
}

// GrantConsent records consent (see Sim.GrantConsent).
func (c *Client) GrantConsent(ctx context.Context, spec ConsentSpec) error {
	return c.do(ctx, "POST", "/_sim/consents", spec, nil)
}

// Revoke kills the user's refresh tokens for a reason (Revoke* constants).
func (c *Client) Revoke(ctx context.Context, user, reason string) error {
	return c.do(ctx, "POST", userPath(user)+"/revoke", map[string]string{"reason": reason}, nil)
}

// Restore lifts a conditional-access block.
func (c *Client) Restore(ctx context.Context, user string) error {
	return c.do(ctx, "POST", userPath(user)+"/restore", nil, nil)
}

// DisableUser blocks a user's sign-in (accountEnabled false).
func (c *Client) DisableUser(ctx context.Context, user string) error {
	return c.do(ctx, "POST", userPath(user)+"/disable", nil, nil)
}

// EnableUser lets a disabled user sign in again.
func (c *Client) EnableUser(ctx context.Context, user string) error {
	return c.do(ctx, "POST", userPath(user)+"/enable", nil, nil)
}

// UpdateUser changes a user's directory properties.
func (c *Client) UpdateUser(ctx context.Context, user string, up UserUpdate) error {
	return c.do(ctx, "PATCH", userPath(user), up, nil)
}

// DeleteUser deletes a user, restorably or (permanent) for good.
func (c *Client) DeleteUser(ctx context.Context, user string, permanent bool) error {
	q := ""
	if permanent {
		q = "?permanent=true"
	}
	return c.do(ctx, "DELETE", userPath(user)+q, nil, nil)
}

// RestoreDeletedUser brings a deleted user back by ID.
func (c *Client) RestoreDeletedUser(ctx context.Context, id string) error {
	return c.do(ctx, "POST", userPath(id)+"/undelete", nil, nil)
}

// InjectMessages delivers messages and returns their immutable IDs.
func (c *Client) InjectMessages(ctx context.Context, user string, specs ...MessageSpec) ([]string, error) {
	var out struct {
		IDs []string `json:"ids"`
	}
	err := c.do(ctx, "POST", userPath(user)+"/messages", specs, &out)
	return out.IDs, err
}

// Generate creates realistic mail in bulk and returns the immutable IDs.
func (c *Client) Generate(ctx context.Context, user string, spec GenerateSpec) ([]string, error) {
	var out struct {
		IDs []string `json:"ids"`
	}
	err := c.do(ctx, "POST", userPath(user)+"/generate", spec, &out)
	return out.IDs, err
}

// MoveMessage moves a message to a folder (ID or well-known name).
func (c *Client) MoveMessage(ctx context.Context, user, id, folder string) error {
	return c.do(ctx, "POST", userPath(user)+"/messages/"+url.PathEscape(id)+"/move", map[string]string{"folder": folder}, nil)
}

// UpdateMessage changes a message's mutable fields.
func (c *Client) UpdateMessage(ctx context.Context, user, id string, up MessageUpdate) error {
	return c.do(ctx, "PATCH", userPath(user)+"/messages/"+url.PathEscape(id), up, nil)
}

// DeleteMessage deletes a message for good.
func (c *Client) DeleteMessage(ctx context.Context, user, id string) error {
	return c.do(ctx, "DELETE", userPath(user)+"/messages/"+url.PathEscape(id), nil, nil)
}

// CreateFolder adds a folder and returns its ID.
func (c *Client) CreateFolder(ctx context.Context, user, parent, name string) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	err := c.do(ctx, "POST", userPath(user)+"/folders", map[string]string{"parent": parent, "name": name}, &out)
	return out.ID, err
}

// DeleteFolder deletes a folder for good, with its child folders and
// their messages.
func (c *Client) DeleteFolder(ctx context.Context, user, folder string) error {
	return c.do(ctx, "DELETE", userPath(user)+"/folders/"+url.PathEscape(folder), nil, nil)
}

// ExpireDeltaTokens makes the mailbox's delta tokens answer 410.
func (c *Client) ExpireDeltaTokens(ctx context.Context, user string) error {
	return c.do(ctx, "POST", userPath(user)+"/expire-delta", nil, nil)
}

// GroundTruth returns what the mailbox really contains.
func (c *Client) GroundTruth(ctx context.Context, user string) (*Truth, error) {
	var t Truth
	return &t, c.do(ctx, "GET", userPath(user)+"/truth", nil, &t)
}

// AdvanceClock moves the simulated time forward and returns it.
func (c *Client) AdvanceClock(ctx context.Context, d time.Duration) (time.Time, error) {
	var out struct {
		Now time.Time `json:"now"`
	}
	err := c.do(ctx, "POST", "/_sim/clock", map[string]string{"advance": d.String()}, &out)
	return out.Now, err
}

// SetFault installs a fault rule (all shares zero removes it).
func (c *Client) SetFault(ctx context.Context, f Fault) error {
	return c.do(ctx, "PUT", "/_sim/faults", f, nil)
}

// ClearFaults removes every fault rule.
func (c *Client) ClearFaults(ctx context.Context) error {
	return c.do(ctx, "DELETE", "/_sim/faults", nil, nil)
}

// Counters returns the simulator's counters.
func (c *Client) Counters(ctx context.Context) (map[string]int64, error) {
	var out map[string]int64
	return out, c.do(ctx, "GET", "/_sim/counters", nil, &out)
}

// ResetCounters zeroes the counters.
func (c *Client) ResetCounters(ctx context.Context) error {
	return c.do(ctx, "DELETE", "/_sim/counters", nil, nil)
}

// ResetThrottle forgets every request budget.
func (c *Client) ResetThrottle(ctx context.Context) error {
	return c.do(ctx, "POST", "/_sim/throttle/reset", nil, nil)
}

// MailboxLoads reports, per app and mailbox, the most requests the
// simulator saw in flight at once and how many it refused for the
// mailbox's concurrency, since the last throttle reset.
func (c *Client) MailboxLoads(ctx context.Context) ([]MailboxLoad, error) {
	var out struct {
		Mailboxes []MailboxLoad `json:"mailboxes"`
	}
	return out.Mailboxes, c.do(ctx, "GET", "/_sim/throttle/mailboxes", nil, &out)
}

// Secrets lists every token, code, verifier, client secret and clientState
// the simulator issued or saw (for leak scans).
func (c *Client) Secrets(ctx context.Context) ([]string, error) {
	var out struct {
		Secrets []string `json:"secrets"`
	}
	err := c.do(ctx, "GET", "/_sim/secrets", nil, &out)
	return out.Secrets, err
}

// Subscriptions lists every subscription with its expiry.
func (c *Client) Subscriptions(ctx context.Context) ([]Subscription, error) {
	var out []Subscription
	return out, c.do(ctx, "GET", "/_sim/subscriptions", nil, &out)
}

// RemoveSubscription removes a subscription, sending subscriptionRemoved.
func (c *Client) RemoveSubscription(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/_sim/subscriptions/"+url.PathEscape(id), nil, nil)
}

// SendLifecycle sends missed or reauthorizationRequired.
func (c *Client) SendLifecycle(ctx context.Context, id, event string) error {
	return c.do(ctx, "POST", "/_sim/subscriptions/"+url.PathEscape(id)+"/lifecycle", map[string]string{"event": event}, nil)
}

// SetNotificationFault delays, drops or duplicates notifications.
func (c *Client) SetNotificationFault(ctx context.Context, f NotificationFault) error {
	return c.do(ctx, "PUT", "/_sim/notifications/fault", f, nil)
}

// SetEndpointReachable makes a notification URL unreachable or reachable.
func (c *Client) SetEndpointReachable(ctx context.Context, u string, reachable bool) error {
	return c.do(ctx, "PUT", "/_sim/notifications/reachability", map[string]any{"url": u, "reachable": reachable}, nil)
}

// Endpoints reports how each notification URL is treated.
func (c *Client) Endpoints(ctx context.Context) ([]EndpointState, error) {
	var out []EndpointState
	return out, c.do(ctx, "GET", "/_sim/notifications/endpoints", nil, &out)
}

// SentMail returns what a mailbox has sent.
func (c *Client) SentMail(ctx context.Context, user string) ([]SentMail, error) {
	var out []SentMail
	return out, c.do(ctx, "GET", userPath(user)+"/sent", nil, &out)
}

// SetAppAccessPolicy creates or replaces an app's application access
// policy in a tenant.
func (c *Client) SetAppAccessPolicy(ctx context.Context, p AppAccessPolicy) error {
	return c.do(ctx, "PUT", "/_sim/policies", p, nil)
}

// RemoveAppAccessPolicy removes an app's policy in a tenant.
func (c *Client) RemoveAppAccessPolicy(ctx context.Context, tenant, appID string) error {
	return c.do(ctx, "DELETE", "/_sim/policies/"+url.PathEscape(tenant)+"/"+url.PathEscape(appID), nil, nil)
}

// AppAccessPolicies lists every application access policy.
func (c *Client) AppAccessPolicies(ctx context.Context) ([]AppAccessPolicy, error) {
	var out []AppAccessPolicy
	return out, c.do(ctx, "GET", "/_sim/policies", nil, &out)
}

// MailboxSettings returns a user's mailbox settings.
func (c *Client) MailboxSettings(ctx context.Context, user string) (*MailboxSettings, error) {
	var out MailboxSettings
	return &out, c.do(ctx, "GET", userPath(user)+"/mailbox-settings", nil, &out)
}

// SetMailboxSettings changes a user's mailbox settings (time zone,
// language, formats, automatic replies).
func (c *Client) SetMailboxSettings(ctx context.Context, user string, up MailboxSettingsUpdate) error {
	return c.do(ctx, "PATCH", userPath(user)+"/mailbox-settings", up, nil)
}

// Delivered returns every copy of sent mail the mailbox received.
func (c *Client) Delivered(ctx context.Context, user string) ([]Delivery, error) {
	var out []Delivery
	return out, c.do(ctx, "GET", userPath(user)+"/delivered", nil, &out)
}

// SetSendFault arms a send fault (see SendFault); nothing armed removes it.
func (c *Client) SetSendFault(ctx context.Context, f SendFault) error {
	return c.do(ctx, "PUT", "/_sim/send-faults", f, nil)
}

// ClearSendFaults removes every send fault.
func (c *Client) ClearSendFaults(ctx context.Context) error {
	return c.do(ctx, "DELETE", "/_sim/send-faults", nil, nil)
}
