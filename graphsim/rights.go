package graphsim

import (
	"fmt"
	"slices"
)

// allRights are the mailbox rights an admin can grant
// (docs/graph.md#mailbox-rights).
var allRights = []string{RightRead, RightReadWrite, RightFullAccess, RightSendAs, RightSendOnBehalf}

func checkRights(rights []string) error {
	for _, r := range rights {
		if !slices.Contains(allRights, r) {
			return fmt.Errorf("graphsim: unknown mailbox right %q", r)
		}
	}
	return nil
}

// mayRead tells whether delegate may read owner's items: a read or
// read-write right, or Full Access. The caller holds s.mu.
func mayRead(owner *User, delegateID string) bool {
	r := owner.rights[delegateID]
	return r[RightRead] || r[RightReadWrite] || r[RightFullAccess]
}

// mayWrite tells whether delegate may change owner's items.
func mayWrite(owner *User, delegateID string) bool {
	r := owner.rights[delegateID]
	return r[RightReadWrite] || r[RightFullAccess]
}

// maySendFrom tells whether delegate may send mail from owner's address:
// Send As or Send on Behalf.
func maySendFrom(owner *User, delegateID string) bool {
	r := owner.rights[delegateID]
	return r[RightSendAs] || r[RightSendOnBehalf]
}

// stampSender sets sender as Exchange does for a delegated send
// (docs/graph.md#sending-as-another-user): with Send As the message
// comes from the mailbox alone (sender equals from); with Send on Behalf
// only, sender is the signed-in user. When both are granted, Send As wins.
// The caller holds s.mu.
func (s *Sim) stampSender(p *principal, m *Message) {
	if !p.delegated() {
		return
	}
	owner := s.user(m.From.Address)
	switch {
	case owner == nil || owner.ID == p.user.ID:
		m.Sender = m.From
	case owner.rights[p.user.ID][RightSendAs]:
		m.Sender = m.From
	case owner.rights[p.user.ID][RightSendOnBehalf]:
		m.Sender = Recipient{Name: p.user.DisplayName, Address: p.user.Mail}
	}
}

// RevokeMailboxRights takes rights on owner's mailbox away from delegate;
// with no rights named, all of them. Requests already in flight finish; the
// next one is refused, as after Remove-MailboxPermission.
func (s *Sim) RevokeMailboxRights(owner, delegate string, rights ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, d := s.user(owner), s.user(delegate)
	if o == nil || d == nil {
		return ErrNotFound
	}
	if err := checkRights(rights); err != nil {
		return err
	}
	if len(rights) == 0 {
		delete(o.rights, d.ID)
		return nil
	}
	for _, r := range rights {
		delete(o.rights[d.ID], r)
	}
	if len(o.rights[d.ID]) == 0 {
		delete(o.rights, d.ID)
	}
	return nil
}

// MailboxRights lists who holds which rights on owner's mailbox, by the
// delegate's user principal name.
func (s *Sim) MailboxRights(owner string) (map[string][]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o := s.user(owner)
	if o == nil {
		return nil, ErrNotFound
	}
	out := map[string][]string{}
	for id, rs := range o.rights {
		name := id
		if d := s.users[id]; d != nil {
			name = d.UPN
		}
		out[name] = keys(rs)
	}
	return out, nil
}
