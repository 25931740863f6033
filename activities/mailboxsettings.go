package activities

import (
	"context"
	"encoding/json"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"go.temporal.io/sdk/activity"

	"github.com/outlookd/outlookd/graph"
	"github.com/outlookd/outlookd/workflows"
)

// GraphSettings is what outlookd keeps of a mailbox's mailboxSettings
// (https://learn.microsoft.com/en-us/graph/api/resources/mailboxsettings):
// what an app needs to read its mail in the user's time and to know
// whether the user is away.
type GraphSettings struct {
	TimeZone         string            `json:"time_zone,omitempty"`
	Language         string            `json:"language,omitempty"`
	DateFormat       string            `json:"date_format,omitempty"`
	TimeFormat       string            `json:"time_format,omitempty"`
	UserPurpose      string            `json:"user_purpose,omitempty"`
	AutomaticReplies *AutomaticReplies `json:"automatic_replies,omitempty"`
}

// AutomaticReplies is the mailbox's automatic replies (out of office).
type AutomaticReplies struct {
	// Status is disabled, alwaysEnabled or scheduled.
	Status           string     `json:"status"`
	ExternalAudience string     `json:"external_audience,omitempty"`
	ScheduledStart   *time.Time `json:"scheduled_start,omitempty"`
	ScheduledEnd     *time.Time `json:"scheduled_end,omitempty"`
	InternalMessage  string     `json:"internal_reply_message,omitempty"`
	ExternalMessage  string     `json:"external_reply_message,omitempty"`
}

// graphSettingsOf keeps what outlookd shows of Graph's mailboxSettings.
func graphSettingsOf(s models.MailboxSettingsable) GraphSettings {
	var out GraphSettings
	out.TimeZone, out.DateFormat, out.TimeFormat = deref(s.GetTimeZone()), deref(s.GetDateFormat()), deref(s.GetTimeFormat())
	if l := s.GetLanguage(); l != nil {
		out.Language = deref(l.GetLocale())
	}
	if p := s.GetUserPurpose(); p != nil {
		out.UserPurpose = p.String()
	}
	if ar := s.GetAutomaticRepliesSetting(); ar != nil {
		r := &AutomaticReplies{InternalMessage: deref(ar.GetInternalReplyMessage()), ExternalMessage: deref(ar.GetExternalReplyMessage())}
		if st := ar.GetStatus(); st != nil {
			r.Status = st.String()
		}
		if a := ar.GetExternalAudience(); a != nil {
			r.ExternalAudience = a.String()
		}
		r.ScheduledStart, r.ScheduledEnd = graphTime(ar.GetScheduledStartDateTime()), graphTime(ar.GetScheduledEndDateTime())
		out.AutomaticReplies = r
	}
	return out
}

// graphTime reads a dateTimeTimeZone; Graph answers mailboxSettings' in
// UTC unless the request prefers another zone.
func graphTime(d models.DateTimeTimeZoneable) *time.Time {
	if d == nil || d.GetDateTime() == nil {
		return nil
	}
	loc := time.UTC
	if z := deref(d.GetTimeZone()); z != "" && z != "UTC" {
		if l, err := time.LoadLocation(z); err == nil {
			loc = l
		}
	}
	for _, layout := range []string{"2006-01-02T15:04:05.9999999", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, *d.GetDateTime(), loc); err == nil {
			t = t.UTC()
			return &t
		}
	}
	return nil
}

// refreshGraphSettings reads a mailbox's mailboxSettings again when the
// last read is older than in.MailboxSettingsEvery, and keeps them. A
// refusal (a policy keeping the app out, the permission withdrawn) is
// logged and leaves the last read: it never fails the sync round.
func (a *Activities) refreshGraphSettings(ctx context.Context, gc *graph.Client, in workflows.SyncFoldersInput) {
	if in.MailboxSettingsEvery <= 0 || in.MailboxID == "" || in.UserID == "" {
		return
	}
	m, err := a.Store.GetMailbox(ctx, in.MailboxID)
	if err != nil || (m.GraphSettingsReadAt != nil && a.now().Sub(*m.GraphSettingsReadAt) < in.MailboxSettingsEvery) {
		return
	}
	at := a.now()
	s, err := gc.Users().ByUserId(in.UserID).MailboxSettings().Get(ctx, nil)
	if err != nil {
		logWarn(ctx, "mailbox settings not read", "mailbox", in.MailboxID, "err", err)
		return
	}
	raw, err := json.Marshal(graphSettingsOf(s))
	if err == nil {
		err = a.Store.SetGraphSettings(ctx, in.MailboxID, raw, at)
	}
	if err != nil {
		logWarn(ctx, "mailbox settings not kept", "mailbox", in.MailboxID, "err", err)
	}
}

func logWarn(ctx context.Context, msg string, kv ...any) {
	if activity.IsActivity(ctx) {
		activity.GetLogger(ctx).Warn(msg, kv...)
	}
}
