package graphsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// controlHandler serves the control API under /_sim/. No real Graph or
// identity path starts with an underscore, so it never shadows one.
func (s *Sim) controlHandler() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, fn func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := fn(r)
			switch {
			case errors.Is(err, ErrNotFound):
				writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			case err != nil:
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			case out == nil:
				w.WriteHeader(http.StatusNoContent)
			default:
				writeJSON(w, http.StatusOK, out)
			}
		})
	}
	handle("POST /_sim/tenants", func(r *http.Request) (any, error) {
		var spec TenantSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.AddTenant(spec)
	})
	handle("POST /_sim/apps", func(r *http.Request) (any, error) {
		var spec AppSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.AddApp(spec)
	})
	handle("POST /_sim/apps/{app}/certificates", s.handleAddCertificate)
	handle("POST /_sim/apps/{app}/secrets", func(r *http.Request) (any, error) {
		var spec SecretSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		if spec.Value == "" {
			return nil, errors.New("graphsim: a secret needs a value")
		}
		return nil, s.AddSecret(r.PathValue("app"), spec.Value, spec.Expires)
	})
	handle("POST /_sim/users", func(r *http.Request) (any, error) {
		var spec UserSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.AddUser(spec)
	})
	handle("POST /_sim/users/{user}/rights", func(r *http.Request) (any, error) {
		var body struct {
			Delegate string   `json:"delegate"`
			Rights   []string `json:"rights"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.GrantMailboxRights(r.PathValue("user"), body.Delegate, body.Rights...)
	})
	handle("POST /_sim/users/{user}/rights/revoke", func(r *http.Request) (any, error) {
		var body struct {
			Delegate string   `json:"delegate"`
			Rights   []string `json:"rights"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.RevokeMailboxRights(r.PathValue("user"), body.Delegate, body.Rights...)
	})
	handle("GET /_sim/users/{user}/rights", func(r *http.Request) (any, error) {
		return s.MailboxRights(r.PathValue("user"))
	})
	handle("POST /_sim/consents", func(r *http.Request) (any, error) {
		var body ConsentSpec
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.GrantConsent(body.Tenant, body.ClientID, body.User, body.Scopes, body.Roles)
	})
	handle("POST /_sim/users/{user}/revoke", func(r *http.Request) (any, error) {
		var body struct {
			Reason string `json:"reason"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.Revoke(r.PathValue("user"), body.Reason)
	})
	handle("POST /_sim/users/{user}/restore", func(r *http.Request) (any, error) {
		return nil, s.Restore(r.PathValue("user"))
	})
	handle("POST /_sim/users/{user}/disable", func(r *http.Request) (any, error) {
		return nil, s.DisableUser(r.PathValue("user"))
	})
	handle("POST /_sim/users/{user}/enable", func(r *http.Request) (any, error) {
		return nil, s.EnableUser(r.PathValue("user"))
	})
	handle("PATCH /_sim/users/{user}", func(r *http.Request) (any, error) {
		var up UserUpdate
		if err := decode(r, &up); err != nil {
			return nil, err
		}
		return nil, s.UpdateUser(r.PathValue("user"), up)
	})
	handle("DELETE /_sim/users/{user}", func(r *http.Request) (any, error) {
		return nil, s.DeleteUser(r.PathValue("user"), r.URL.Query().Get("permanent") == "true")
	})
	handle("POST /_sim/users/{user}/undelete", func(r *http.Request) (any, error) {
		return nil, s.RestoreDeletedUser(r.PathValue("user"))
	})
	handle("POST /_sim/users/{user}/messages", func(r *http.Request) (any, error) {
		var specs []MessageSpec
		if err := decode(r, &specs); err != nil {
			return nil, err
		}
		ids, err := s.InjectMessages(r.PathValue("user"), specs)
		return map[string]any{"ids": ids}, err
	})
	handle("POST /_sim/users/{user}/generate", func(r *http.Request) (any, error) {
		var spec GenerateSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		ids, err := s.Generate(r.PathValue("user"), spec)
		return map[string]any{"ids": ids}, err
	})
	handle("POST /_sim/users/{user}/messages/{id}/move", func(r *http.Request) (any, error) {
		var body struct {
			Folder string `json:"folder"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.MoveMessage(r.PathValue("user"), r.PathValue("id"), body.Folder)
	})
	handle("PATCH /_sim/users/{user}/messages/{id}", func(r *http.Request) (any, error) {
		var up MessageUpdate
		if err := decode(r, &up); err != nil {
			return nil, err
		}
		return nil, s.UpdateMessage(r.PathValue("user"), r.PathValue("id"), up)
	})
	handle("DELETE /_sim/users/{user}/messages/{id}", func(r *http.Request) (any, error) {
		return nil, s.DeleteMessage(r.PathValue("user"), r.PathValue("id"))
	})
	handle("POST /_sim/users/{user}/folders", func(r *http.Request) (any, error) {
		var body struct {
			Parent string `json:"parent"`
			Name   string `json:"name"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		id, err := s.CreateFolder(r.PathValue("user"), body.Parent, body.Name)
		return map[string]string{"id": id}, err
	})
	handle("DELETE /_sim/users/{user}/folders/{folder}", func(r *http.Request) (any, error) {
		return nil, s.DeleteFolder(r.PathValue("user"), r.PathValue("folder"))
	})
	handle("POST /_sim/users/{user}/expire-delta", func(r *http.Request) (any, error) {
		return nil, s.ExpireDeltaTokens(r.PathValue("user"))
	})
	handle("GET /_sim/users/{user}/truth", func(r *http.Request) (any, error) {
		return s.GroundTruth(r.PathValue("user"))
	})
	handle("GET /_sim/clock", func(r *http.Request) (any, error) {
		return map[string]time.Time{"now": s.clock.Now()}, nil
	})
	handle("POST /_sim/clock", func(r *http.Request) (any, error) {
		var body struct {
			Advance string `json:"advance"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		d, err := time.ParseDuration(body.Advance)
		if err != nil || d < 0 {
			return nil, errors.New("advance must be a positive duration such as 90m or 24h")
		}
		s.clock.Advance(d)
		return map[string]time.Time{"now": s.clock.Now()}, nil
	})
	handle("GET /_sim/faults", func(r *http.Request) (any, error) { return s.faults.list(), nil })
	handle("PUT /_sim/faults", func(r *http.Request) (any, error) {
		var f Fault
		if err := decode(r, &f); err != nil {
			return nil, err
		}
		if f.Endpoint == "" {
			return nil, errors.New("a fault needs an endpoint class or \"*\"")
		}
		s.SetFault(f)
		return nil, nil
	})
	handle("DELETE /_sim/faults", func(r *http.Request) (any, error) { s.ClearFaults(); return nil, nil })
	handle("GET /_sim/counters", func(r *http.Request) (any, error) { return s.Counters(), nil })
	handle("DELETE /_sim/counters", func(r *http.Request) (any, error) { s.ResetCounters(); return nil, nil })
	handle("POST /_sim/throttle/reset", func(r *http.Request) (any, error) { s.throttle.reset(); return nil, nil })
	handle("GET /_sim/throttle/mailboxes", func(r *http.Request) (any, error) {
		return map[string]any{"mailboxes": s.MailboxLoads()}, nil
	})
	handle("GET /_sim/subscriptions", func(r *http.Request) (any, error) { return s.Subscriptions(), nil })
	// Every secret issued or seen, for leak scans (a simulator only).
	handle("POST /_sim/groups", func(r *http.Request) (any, error) {
		var spec GroupSpec
		if err := decode(r, &spec); err != nil {
			return nil, err
		}
		return s.AddGroup(spec)
	})
	handle("POST /_sim/groups/{group}/members", func(r *http.Request) (any, error) {
		var body struct {
			Member string `json:"member"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.AddGroupMember(r.PathValue("group"), body.Member)
	})
	handle("DELETE /_sim/groups/{group}/members/{member}", func(r *http.Request) (any, error) {
		return nil, s.RemoveGroupMember(r.PathValue("group"), r.PathValue("member"))
	})
	handle("GET /_sim/secrets", func(r *http.Request) (any, error) { return map[string]any{"secrets": s.Secrets()}, nil })
	handle("DELETE /_sim/subscriptions/{id}", func(r *http.Request) (any, error) {
		return nil, s.RemoveSubscription(r.PathValue("id"))
	})
	handle("POST /_sim/subscriptions/{id}/lifecycle", func(r *http.Request) (any, error) {
		var body struct {
			Event string `json:"event"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		return nil, s.SendLifecycle(r.PathValue("id"), body.Event)
	})
	handle("PUT /_sim/notifications/fault", func(r *http.Request) (any, error) {
		var f NotificationFault
		if err := decode(r, &f); err != nil {
			return nil, err
		}
		s.SetNotificationFault(f)
		return nil, nil
	})
	handle("PUT /_sim/notifications/reachability", func(r *http.Request) (any, error) {
		var body struct {
			URL       string `json:"url"`
			Reachable bool   `json:"reachable"`
		}
		if err := decode(r, &body); err != nil {
			return nil, err
		}
		s.SetEndpointReachable(body.URL, body.Reachable)
		return nil, nil
	})
	handle("GET /_sim/notifications/endpoints", func(r *http.Request) (any, error) { return s.Endpoints(), nil })
	handle("GET /_sim/users/{user}/sent", func(r *http.Request) (any, error) { return s.SentMail(r.PathValue("user")) })
	handle("PUT /_sim/policies", func(r *http.Request) (any, error) {
		var p AppAccessPolicy
		if err := decode(r, &p); err != nil {
			return nil, err
		}
		return nil, s.SetAppAccessPolicy(p)
	})
	handle("DELETE /_sim/policies/{tenant}/{app}", func(r *http.Request) (any, error) {
		return nil, s.RemoveAppAccessPolicy(r.PathValue("tenant"), r.PathValue("app"))
	})
	handle("GET /_sim/policies", func(r *http.Request) (any, error) { return s.AppAccessPolicies(), nil })
	handle("GET /_sim/users/{user}/mailbox-settings", func(r *http.Request) (any, error) {
		return s.MailboxSettings(r.PathValue("user"))
	})
	handle("PATCH /_sim/users/{user}/mailbox-settings", func(r *http.Request) (any, error) {
		var up MailboxSettingsUpdate
		if err := decode(r, &up); err != nil {
			return nil, err
		}
		return nil, s.SetMailboxSettings(r.PathValue("user"), up)
	})
	handle("GET /_sim/users/{user}/delivered", func(r *http.Request) (any, error) { return s.Delivered(r.PathValue("user")) })
	handle("PUT /_sim/send-faults", func(r *http.Request) (any, error) {
		var f SendFault
		if err := decode(r, &f); err != nil {
			return nil, err
		}
		return nil, s.SetSendFault(f)
	})
	handle("DELETE /_sim/send-faults", func(r *http.Request) (any, error) { s.ClearSendFaults(); return nil, nil })
	return mux
}

// ConsentSpec grants consent through the control API.
type ConsentSpec struct {
	Tenant   string   `json:"tenant"`
	ClientID string   `json:"clientId"`
	User     string   `json:"user,omitempty"`
	Scopes   []string `json:"scopes,omitempty"`
	Roles    []string `json:"roles,omitempty"`
}

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 256<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New("bad request body: " + err.Error())
	}
	return nil
}
