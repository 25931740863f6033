package graphsim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MailboxSettings are the settings Graph shows as a user's mailboxSettings
// (docs/graph.md#mailbox-settings). Empty fields take Exchange's defaults.
type MailboxSettings struct {
	TimeZone         string           `json:"timeZone"` // Windows or IANA name; default UTC
	Locale           string           `json:"locale"`   // language, e.g. en-US
	DateFormat       string           `json:"dateFormat"`
	TimeFormat       string           `json:"timeFormat"`
	AutomaticReplies AutomaticReplies `json:"automaticReplies"`
}

// AutomaticReplies is the automaticRepliesSetting of a mailbox.
type AutomaticReplies struct {
	Status               string    `json:"status"`           // disabled, alwaysEnabled or scheduled
	ExternalAudience     string    `json:"externalAudience"` // none, contactsOnly or all
	InternalReplyMessage string    `json:"internalReplyMessage"`
	ExternalReplyMessage string    `json:"externalReplyMessage"`
	ScheduledStart       time.Time `json:"scheduledStart,omitzero"`
	ScheduledEnd         time.Time `json:"scheduledEnd,omitzero"`
}

// MailboxSettingsUpdate changes some settings; nil fields stay.
type MailboxSettingsUpdate struct {
	TimeZone         *string           `json:"timeZone,omitempty"`
	Locale           *string           `json:"locale,omitempty"`
	DateFormat       *string           `json:"dateFormat,omitempty"`
	TimeFormat       *string           `json:"timeFormat,omitempty"`
	AutomaticReplies *AutomaticReplies `json:"automaticReplies,omitempty"`
}

// localeNames are the display names Exchange gives some locales.
var localeNames = map[string]string{
	"en-US": "English (United States)", "en-GB": "English (United Kingdom)", "de-DE": "German (Germany)",
	"fr-FR": "French (France)", "nl-NL": "Dutch (Netherlands)", "es-ES": "Spanish (Spain)", "it-IT": "Italian (Italy)",
}

// withDefaults fills what an admin or user never set, as a new Exchange
// Online mailbox has it.
func (ms MailboxSettings) withDefaults() MailboxSettings {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&ms.TimeZone, "UTC")
	def(&ms.Locale, "en-US")
	def(&ms.DateFormat, "M/d/yyyy")
	def(&ms.TimeFormat, "h:mm tt")
	def(&ms.AutomaticReplies.Status, "disabled")
	def(&ms.AutomaticReplies.ExternalAudience, "all")
	return ms
}

// MailboxSettings returns a user's mailbox settings, defaults filled in.
func (s *Sim) MailboxSettings(user string) (MailboxSettings, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return MailboxSettings{}, fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	return u.settings.withDefaults(), nil
}

// SetMailboxSettings changes a user's mailbox settings, as the user in
// Outlook or an admin in Exchange would (time zone, language, formats,
// automatic replies).
func (s *Sim) SetMailboxSettings(user string, up MailboxSettingsUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	next := u.settings
	for _, f := range []struct {
		dst *string
		src *string
	}{{&next.TimeZone, up.TimeZone}, {&next.Locale, up.Locale}, {&next.DateFormat, up.DateFormat}, {&next.TimeFormat, up.TimeFormat}} {
		if f.src != nil {
			*f.dst = strings.TrimSpace(*f.src)
		}
	}
	if ar := up.AutomaticReplies; ar != nil {
		if err := checkAutomaticReplies(*ar); err != nil {
			return err
		}
		next.AutomaticReplies = *ar
	}
	u.settings = next
	return nil
}

func checkAutomaticReplies(ar AutomaticReplies) error {
	if ar.Status != "" && !slices.Contains([]string{"disabled", "alwaysEnabled", "scheduled"}, ar.Status) {
		return fmt.Errorf("graphsim: automatic replies status must be disabled, alwaysEnabled or scheduled, not %q", ar.Status)
	}
	if ar.ExternalAudience != "" && !slices.Contains([]string{"none", "contactsOnly", "all"}, ar.ExternalAudience) {
		return fmt.Errorf("graphsim: external audience must be none, contactsOnly or all, not %q", ar.ExternalAudience)
	}
	if ar.Status == "scheduled" && !ar.ScheduledEnd.After(ar.ScheduledStart) {
		return fmt.Errorf("graphsim: scheduled automatic replies need a start before the end")
	}
	return nil
}

// graphDateTime is a dateTimeTimeZone as Graph writes it.
func graphDateTime(t time.Time) map[string]string {
	return map[string]string{"dateTime": t.UTC().Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
}

// settingsJSON renders mailboxSettings (docs/graph.md#mailbox-settings).
// The caller holds s.mu.
func (s *Sim) settingsJSON(u *User) map[string]any {
	ms := u.settings.withDefaults()
	ar := ms.AutomaticReplies
	start, end := ar.ScheduledStart, ar.ScheduledEnd
	if start.IsZero() || end.IsZero() {
		// Exchange shows a schedule even when replies are off.
		start = s.clock.Now().Truncate(time.Hour)
		end = start.Add(24 * time.Hour)
	}
	purpose := "user"
	if u.Shared {
		purpose = "shared"
	}
	display := localeNames[ms.Locale]
	if display == "" {
		display = ms.Locale
	}
	return map[string]any{
		"archiveFolder": u.mailbox.wellKnown["archive"],
		"timeZone":      ms.TimeZone,
		"automaticRepliesSetting": map[string]any{
			"status": ar.Status, "externalAudience": ar.ExternalAudience,
			"scheduledStartDateTime": graphDateTime(start), "scheduledEndDateTime": graphDateTime(end),
			"internalReplyMessage": ar.InternalReplyMessage, "externalReplyMessage": ar.ExternalReplyMessage,
		},
		"language": map[string]string{"locale": ms.Locale, "displayName": display},
		"workingHours": map[string]any{
			"daysOfWeek": []string{"monday", "tuesday", "wednesday", "thursday", "friday"},
			"startTime":  "08:00:00.0000000", "endTime": "17:00:00.0000000",
			"timeZone": map[string]string{"name": ms.TimeZone},
		},
		// userPurpose is an enumeration in v1.0's metadata (the SDK reads a
		// string); some pages show it as an object.
		"userPurpose":                           purpose,
		"dateFormat":                            ms.DateFormat,
		"timeFormat":                            ms.TimeFormat,
		"delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
	}
}

// mailboxSettingsAccess checks who may read target's settings: the
// application permission MailboxSettings.Read (or ReadWrite), within the
// app's access policy; delegated, only one's own mailbox. The caller holds
// s.mu. It answers and reports false when the caller may not.
func (s *Sim) mailboxSettingsAccess(g *graphRequest) bool {
	p, t := g.p, g.target
	switch {
	case s.policyBlocks(p, t):
		graphError(g.w, g.r, http.StatusForbidden, "ErrorAccessDenied", errPolicyDenied)
	case t.NoMailbox:
		graphError(g.w, g.r, http.StatusNotFound, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
	case !p.has("MailboxSettings.Read", "MailboxSettings.ReadWrite"),
		p.delegated() && p.user.ID != t.ID,
		!p.delegated() && s.tenants[t.TenantID].Personal:
		errAccessDenied(g.w, g.r)
	default:
		return true
	}
	return false
}

// serveMailboxSettings serves GET {me|users/{id}}/mailboxSettings and its
// properties (docs/graph.md#mailbox-settings).
func (s *Sim) serveMailboxSettings(g *graphRequest) {
	if g.r.Method != http.MethodGet {
		graphError(g.w, g.r, http.StatusMethodNotAllowed, "Request_BadRequest", "The requested method is not supported by this resource.")
		return
	}
	if len(g.nodes) > 2 {
		errResourceNotFound(g.w, g.r)
		return
	}
	s.mu.RLock()
	ok := s.mailboxSettingsAccess(g)
	s.mu.RUnlock()
	if !ok {
		return
	}
	// Mailbox settings live in Exchange: Outlook's per-mailbox limits apply.
	release, ok := s.acquireMailbox(g)
	if !ok {
		return
	}
	defer release()
	sleep(g.r, g.latency)
	s.mu.RLock()
	body := s.settingsJSON(g.target)
	s.mu.RUnlock()
	ctx := s.URL() + "/v1.0/$metadata#users('" + g.target.ID + "')/mailboxSettings"
	if len(g.nodes) == 1 {
		body["@odata.context"] = ctx
		writeJSON(g.w, http.StatusOK, body)
		return
	}
	seg := g.nodes[1].name
	for name, v := range body {
		if !strings.EqualFold(name, seg) {
			continue
		}
		ctx += "/" + name
		if obj, isObj := v.(map[string]any); isObj {
			obj["@odata.context"] = ctx
			writeJSON(g.w, http.StatusOK, obj)
			return
		}
		if obj, isObj := v.(map[string]string); isObj {
			out := map[string]any{"@odata.context": ctx}
			for k, x := range obj {
				out[k] = x
			}
			writeJSON(g.w, http.StatusOK, out)
			return
		}
		writeJSON(g.w, http.StatusOK, map[string]any{"@odata.context": ctx, "value": v})
		return
	}
	errBadRequest(g.w, g.r, "Resource not found for the segment '"+g.nodes[1].name+"'.")
}
