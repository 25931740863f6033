package graphsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// MessageSpec describes a message to put in a mailbox.
type MessageSpec struct {
	Folder            string           `json:"folder"` // folder ID or well-known name; default inbox
	Subject           string           `json:"subject"`
	From              Recipient        `json:"from"`
	To                []Recipient      `json:"to,omitempty"`
	Cc                []Recipient      `json:"cc,omitempty"`
	Bcc               []Recipient      `json:"bcc,omitempty"`
	Body              string           `json:"body,omitempty"`
	BodyType          string           `json:"bodyType,omitempty"` // html (default) or text
	Received          time.Time        `json:"received,omitempty"` // default now
	Sent              time.Time        `json:"sent,omitempty"`
	IsRead            bool             `json:"isRead,omitempty"`
	IsDraft           bool             `json:"isDraft,omitempty"`
	Importance        string           `json:"importance,omitempty"`
	Categories        []string         `json:"categories,omitempty"`
	InternetMessageID string           `json:"internetMessageId,omitempty"`
	ConversationID    string           `json:"conversationId,omitempty"`
	Attachments       []AttachmentSpec `json:"attachments,omitempty"`
}

// AttachmentSpec describes a file attachment.
type AttachmentSpec struct {
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Content     []byte `json:"content"`
	Inline      bool   `json:"inline,omitempty"`
}

// InjectMessages delivers messages into a user's mailbox and returns their
// immutable IDs, in order.
func (s *Sim) InjectMessages(user string, specs []MessageSpec) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return nil, fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	now := s.clock.Now()
	ids := make([]string, 0, len(specs))
	for i := range specs {
		addressed(u, &specs[i])
		m, err := s.buildMessage(u, &specs[i], now)
		if err != nil {
			return ids, err
		}
		u.mailbox.insert(m, now)
		ids = append(ids, m.ImmutableID)
	}
	return ids, nil
}

func (s *Sim) buildMessage(u *User, spec *MessageSpec, now time.Time) (*Message, error) {
	mb := u.mailbox
	fname := spec.Folder
	if fname == "" {
		fname = "inbox"
	}
	f := mb.folder(fname)
	if f == nil || f.ID == mb.rootID {
		return nil, fmt.Errorf("graphsim: folder %q: %w", fname, ErrNotFound)
	}
	imm := exchangeID("AAMkAGI", u.ID, randomToken(12))
	// Graph's timestamps have whole seconds (docs/graph.md#message-properties).
	received := spec.Received
	if received.IsZero() {
		received = now
	}
	received = received.UTC().Truncate(time.Second)
	sent := spec.Sent.UTC().Truncate(time.Second)
	if sent.IsZero() {
		sent = received.Add(-3 * time.Second)
	}
	ctype := strings.ToLower(spec.BodyType)
	if ctype == "" {
		ctype = "html"
	}
	imid := spec.InternetMessageID
	if imid == "" {
		imid = "<" + randomToken(18) + "@" + domainOf(spec.From.Address, "sim.example") + ">"
	}
	conv := spec.ConversationID
	if conv == "" {
		conv = exchangeID("AAQkAG", u.ID, "conv", randomToken(8))
	}
	importance := strings.ToLower(spec.Importance)
	if importance == "" {
		importance = "normal"
	}
	m := &Message{
		ImmutableID: imm, FolderID: f.ID, InternetMessageID: imid, ConversationID: conv,
		ConversationIndex: conversationIndex(), Subject: spec.Subject, Body: spec.Body, BodyContentType: ctype,
		BodyPreview: preview(spec.Body, ctype), From: spec.From, Sender: spec.From,
		To: slices.Clone(spec.To), Cc: slices.Clone(spec.Cc), Bcc: slices.Clone(spec.Bcc),
		Created: received, Received: received, Sent: sent, IsRead: spec.IsRead, IsDraft: spec.IsDraft,
		Importance: importance, Categories: slices.Clone(spec.Categories), Flag: "notFlagged", Inference: "focused",
	}
	for _, a := range spec.Attachments {
		ct := a.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		m.Attachments = append(m.Attachments, &Attachment{
			ID: exchangeID("AAMkAGIAtt", imm, a.Name, randomToken(6)), Name: a.Name, ContentType: ct,
			Content: a.Content, IsInline: a.Inline, Modified: received,
		})
	}
	return m, nil
}

// addressed gives injected mail the addresses real mail has when the spec
// names none: a correspondent as sender and the mailbox as recipient
// (mail filed in Sent Items the other way round).
func addressed(u *User, spec *MessageSpec) {
	me := Recipient{Name: u.DisplayName, Address: u.Mail}
	sent := strings.EqualFold(spec.Folder, "sentitems")
	if spec.From.Address == "" {
		if sent {
			spec.From = me
		} else {
			spec.From = correspondent(mrand.Uint64())
		}
	}
	if len(spec.To) == 0 && len(spec.Cc) == 0 && len(spec.Bcc) == 0 {
		if sent {
			spec.To = []Recipient{correspondent(mrand.Uint64())}
		} else {
			spec.To = []Recipient{me}
		}
	}
}

// correspondent is a realistic external person, drawn from n.
func correspondent(n uint64) Recipient {
	first := firstNames[n%uint64(len(firstNames))]
	last := lastNames[(n/32)%uint64(len(lastNames))]
	domain := domains[(n/1024)%uint64(len(domains))]
	return Recipient{Name: first + " " + last, Address: strings.ToLower(first + "." + strings.ReplaceAll(last, "-", "") + "@" + domain)}
}

func domainOf(addr, def string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i+1 < len(addr) {
		return addr[i+1:]
	}
	return def
}

// preview is the first 255 characters of the body as text (docs/graph.md#message-properties).
func preview(body, ctype string) string {
	text := body
	if ctype == "html" {
		text = stripTags(body)
	}
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) > 255 {
		r := []rune(text)
		text = string(r[:255])
	}
	return text
}

func stripTags(h string) string {
	var b strings.Builder
	in := false
	for _, r := range h {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteRune(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// MoveMessage moves a message (by immutable or REST ID) to a folder.
func (s *Sim) MoveMessage(user, id, folder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, m, err := s.lookupMessage(user, id)
	if err != nil {
		return err
	}
	f := mb.folder(folder)
	if f == nil || f.ID == mb.rootID {
		return fmt.Errorf("graphsim: folder %q: %w", folder, ErrNotFound)
	}
	mb.move(m, f, s.clock.Now())
	return nil
}

// DeleteMessage deletes a message for good (a hard delete; a delete in
// Outlook is a move to deleteditems).
func (s *Sim) DeleteMessage(user, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, m, err := s.lookupMessage(user, id)
	if err != nil {
		return err
	}
	mb.remove(m)
	return nil
}

// MessageUpdate changes the mutable fields of a message; nil leaves a field.
type MessageUpdate struct {
	IsRead     *bool     `json:"isRead,omitempty"`
	Categories *[]string `json:"categories,omitempty"`
	Subject    *string   `json:"subject,omitempty"`
	Importance *string   `json:"importance,omitempty"`
	Flag       *string   `json:"flag,omitempty"`
}

// UpdateMessage applies an update, changing the message's change key.
func (s *Sim) UpdateMessage(user, id string, up MessageUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb, m, err := s.lookupMessage(user, id)
	if err != nil {
		return err
	}
	applyUpdate(m, up)
	mb.update(m, s.clock.Now())
	return nil
}

func applyUpdate(m *Message, up MessageUpdate) {
	if up.IsRead != nil {
		m.IsRead = *up.IsRead
	}
	if up.Categories != nil {
		m.Categories = slices.Clone(*up.Categories)
	}
	if up.Subject != nil {
		m.Subject = *up.Subject
	}
	if up.Importance != nil {
		m.Importance = *up.Importance
	}
	if up.Flag != nil {
		m.Flag = *up.Flag
	}
}

func (s *Sim) lookupMessage(user, id string) (*mailbox, *Message, error) {
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return nil, nil, fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	m := u.mailbox.messageByID(id)
	if m == nil {
		return nil, nil, fmt.Errorf("graphsim: message %q: %w", id, ErrNotFound)
	}
	return u.mailbox, m, nil
}

// CreateFolder adds a folder under parent (a folder ID or well-known name;
// empty for the top level) and returns its ID.
func (s *Sim) CreateFolder(user, parent, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return "", ErrNotFound
	}
	p := u.mailbox.folders[u.mailbox.rootID]
	if parent != "" {
		if p = u.mailbox.folder(parent); p == nil {
			return "", fmt.Errorf("graphsim: folder %q: %w", parent, ErrNotFound)
		}
	}
	for _, c := range p.children {
		if strings.EqualFold(u.mailbox.folders[c].DisplayName, name) {
			return "", fmt.Errorf("graphsim: folder %q exists under %q", name, p.DisplayName)
		}
	}
	return u.mailbox.addFolder(u.ID, p.ID, name).ID, nil
}

// DeleteFolder deletes a folder (by ID or well-known name) for good, with
// its child folders and their messages, as a permanent delete in Outlook
// or Graph's permanentDelete does; requests naming it then answer 404
// ErrorItemNotFound. Well-known folders and the root cannot be deleted.
func (s *Sim) DeleteFolder(user, folder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	mb := u.mailbox
	f := mb.folder(folder)
	if f == nil {
		return fmt.Errorf("graphsim: folder %q: %w", folder, ErrNotFound)
	}
	if f.WellKnown != "" || f.ID == mb.rootID {
		return fmt.Errorf("graphsim: the well-known folder %q cannot be deleted", folder)
	}
	var drop func(f *Folder)
	drop = func(f *Folder) {
		for _, c := range f.children {
			drop(mb.folders[c])
		}
		for _, m := range mb.folderMessages(f) {
			mb.remove(m)
		}
		delete(mb.folders, f.ID)
	}
	drop(f)
	if p := mb.folders[f.ParentID]; p != nil {
		p.children = slices.DeleteFunc(p.children, func(id string) bool { return id == f.ID })
	}
	return nil
}

// Truth is the ground truth of one mailbox.
type Truth struct {
	User     string         `json:"user"`
	Folders  []FolderTruth  `json:"folders"`
	Messages []MessageTruth `json:"messages"`
	// Deleted lists immutable IDs deleted for good.
	Deleted []string `json:"deleted"`
}

// FolderTruth is a folder as it really is.
type FolderTruth struct {
	ID          string `json:"id"`
	ParentID    string `json:"parentFolderId"`
	DisplayName string `json:"displayName"`
	WellKnown   string `json:"wellKnownName,omitempty"`
	Total       int    `json:"totalItemCount"`
}

// MessageTruth carries the fields outlookd stores.
type MessageTruth struct {
	ImmutableID       string            `json:"immutableId"`
	RestID            string            `json:"restId"`
	FolderID          string            `json:"folderId"`
	InternetMessageID string            `json:"internetMessageId"`
	ConversationID    string            `json:"conversationId"`
	ChangeKey         string            `json:"changeKey"`
	Subject           string            `json:"subject"`
	From              Recipient         `json:"from"`
	To                []Recipient       `json:"to"`
	Cc                []Recipient       `json:"cc"`
	Bcc               []Recipient       `json:"bcc"`
	Received          time.Time         `json:"receivedDateTime"`
	Sent              time.Time         `json:"sentDateTime"`
	IsRead            bool              `json:"isRead"`
	Importance        string            `json:"importance"`
	Categories        []string          `json:"categories"`
	HasAttachments    bool              `json:"hasAttachments"`
	BodyPreview       string            `json:"bodyPreview"`
	Body              string            `json:"body"`
	Attachments       []AttachmentTruth `json:"attachments"`
	// ExtendedProperties are its single-value extended properties by id.
	ExtendedProperties map[string]string `json:"extendedProperties,omitempty"`
}

// AttachmentTruth describes an attachment.
type AttachmentTruth struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"`
	Size        int    `json:"size"`
	IsInline    bool   `json:"isInline"`
	// SHA256 is the hex SHA-256 of the file's bytes.
	SHA256 string `json:"sha256"`
}

// GroundTruth returns what the mailbox really contains.
func (s *Sim) GroundTruth(user string) (*Truth, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return nil, fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	mb := u.mailbox
	t := &Truth{User: u.UPN, Deleted: keys(mb.deleted)}
	for _, f := range mb.folders {
		if f.ID == mb.rootID {
			continue
		}
		t.Folders = append(t.Folders, FolderTruth{ID: f.ID, ParentID: f.ParentID, DisplayName: f.DisplayName, WellKnown: f.WellKnown, Total: len(f.items)})
	}
	slices.SortFunc(t.Folders, func(a, b FolderTruth) int { return strings.Compare(a.ID, b.ID) })
	for _, m := range mb.messages {
		mt := MessageTruth{
			ImmutableID: m.ImmutableID, RestID: m.restID, FolderID: m.FolderID, InternetMessageID: m.InternetMessageID,
			ConversationID: m.ConversationID, ChangeKey: m.ChangeKey, Subject: m.Subject, From: m.From,
			To: m.To, Cc: m.Cc, Bcc: m.Bcc, Received: m.Received, Sent: m.Sent, IsRead: m.IsRead,
			Importance: m.Importance, Categories: m.Categories, HasAttachments: m.HasAttachments(),
			BodyPreview: m.BodyPreview, Body: m.Body, ExtendedProperties: extPropMap(m.ExtProps),
		}
		for _, a := range m.Attachments {
			mt.Attachments = append(mt.Attachments, AttachmentTruth{ID: a.ID, Name: a.Name, ContentType: a.ContentType, Size: len(a.Content), IsInline: a.IsInline,
				SHA256: fmt.Sprintf("%x", sha256.Sum256(a.Content))})
		}
		t.Messages = append(t.Messages, mt)
	}
	slices.SortFunc(t.Messages, func(a, b MessageTruth) int { return strings.Compare(a.ImmutableID, b.ImmutableID) })
	return t, nil
}

// conversationIndex is Edm.Binary: standard base64 (the SDK decodes it).
func conversationIndex() string {
	b := make([]byte, 22)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// Delivered lists every copy of a sent message delivered to the mailbox,
// in order (docs/graph.md#ambiguous-send-answers): a message sent twice
// shows twice.
func (s *Sim) Delivered(user string) ([]Delivery, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return nil, fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	return slices.Clone(s.delivered[u.ID]), nil
}
