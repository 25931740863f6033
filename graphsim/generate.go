package graphsim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// GenerateSpec asks for realistic mail in bulk.
type GenerateSpec struct {
	Count int `json:"count"`
	// Days spreads received times over the last Days days (default 30).
	Days int `json:"days,omitempty"`
	// Folders receive the messages in turn, weighted by repetition
	// (default: inbox x6, sentitems x2, archive x1).
	Folders []string `json:"folders,omitempty"`
	// AttachmentShare is the share of messages with a file attachment.
	AttachmentShare float64 `json:"attachmentShare,omitempty"`
	// ThreadShare is the share of messages that reply in an earlier thread.
	ThreadShare float64 `json:"threadShare,omitempty"`
	// Seed makes the content reproducible (IDs are always unique).
	Seed uint64 `json:"seed,omitempty"`
	// Correspondents limits the distinct external senders (default 200).
	Correspondents int `json:"correspondents,omitempty"`
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Margaret", "Linus", "Barbara", "Ken", "Radia", "Dennis", "Frances", "Edsger", "Hedy", "Donald", "Katherine", "Tim", "Shafi", "Leslie", "Sophie", "Niklaus", "Joan"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Hamilton", "Torvalds", "Liskov", "Thompson", "Perlman", "Ritchie", "Allen", "Dijkstra", "Lamarr", "Knuth", "Johnson", "Berners-Lee", "Goldwasser", "Lamport", "Wilson", "Wirth", "Clarke"}
	domains    = []string{"fabrikam.com", "contoso.org", "northwind.example", "adatum.net", "tailspin.example", "woodgrove.example", "outlook.com"}
	subjects   = []string{"Quarterly numbers", "Lease renewal for unit %d", "Invoice #%d", "Re: maintenance request %d", "Lunch on Thursday?", "Contract draft v%d", "Your order %d has shipped", "Team offsite agenda", "Follow-up from our call", "Inspection scheduled", "Budget review", "Welcome aboard!", "Action needed: signature", "Photos from the site visit", "Weekly status %d"}
	sentences  = []string{"Thanks for getting back to me so quickly.", "Please find the details below.", "Let me know if Thursday works for you.", "I have attached the latest version for your review.", "The tenant in unit 4B reported a leaking faucet.", "Could you confirm the figures before Friday?", "We are on track for the deadline.", "Happy to jump on a call to discuss.", "The invoice is due within thirty days.", "See you at the meeting."}
)

// Generate creates Count realistic messages in a user's mailbox: senders,
// threads, folders, sizes and dates spread over the window. It takes the
// lock once, so 100,000 messages take a few seconds.
func (s *Sim) Generate(user string, spec GenerateSpec) ([]string, error) {
	if spec.Count <= 0 || spec.Count > 1_000_000 {
		return nil, fmt.Errorf("graphsim: count must be between 1 and 1,000,000")
	}
	if spec.Days <= 0 {
		spec.Days = 30
	}
	if len(spec.Folders) == 0 {
		spec.Folders = []string{"inbox", "inbox", "inbox", "inbox", "inbox", "inbox", "sentitems", "sentitems", "archive"}
	}
	if spec.Correspondents <= 0 {
		spec.Correspondents = 200
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.user(user)
	if u == nil || u.mailbox == nil {
		return nil, fmt.Errorf("graphsim: mailbox %q: %w", user, ErrNotFound)
	}
	folders := make([]*Folder, len(spec.Folders))
	for i, name := range spec.Folders {
		if folders[i] = u.mailbox.folder(name); folders[i] == nil {
			return nil, fmt.Errorf("graphsim: folder %q: %w", name, ErrNotFound)
		}
	}
	rng := rand.New(rand.NewPCG(spec.Seed, spec.Seed^0x9e3779b97f4a7c15))
	people := make([]Recipient, spec.Correspondents)
	for i := range people {
		first, last := firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))]
		people[i] = Recipient{Name: first + " " + last, Address: strings.ToLower(first+"."+strings.ReplaceAll(last, "-", "")) + fmt.Sprintf("%d@", i) + domains[rng.IntN(len(domains))]}
	}
	me := Recipient{Name: u.DisplayName, Address: u.Mail}
	now := s.clock.Now()
	window := time.Duration(spec.Days) * 24 * time.Hour
	type thread struct{ conv, subject string }
	var threads []thread
	ids := make([]string, 0, spec.Count)
	for i := range spec.Count {
		f := folders[i%len(folders)]
		other := people[rng.IntN(len(people))]
		from, to := other, []Recipient{me}
		if f.WellKnown == "sentitems" {
			from, to = me, []Recipient{other}
		}
		var cc []Recipient
		if rng.IntN(4) == 0 {
			cc = append(cc, people[rng.IntN(len(people))])
		}
		subj := subjects[rng.IntN(len(subjects))]
		if strings.Contains(subj, "%d") {
			subj = fmt.Sprintf(subj, 100+rng.IntN(9000))
		}
		conv := ""
		if len(threads) > 0 && rng.Float64() < spec.ThreadShare {
			t := threads[rng.IntN(len(threads))]
			conv, subj = t.conv, "Re: "+strings.TrimPrefix(t.subject, "Re: ")
		}
		var body strings.Builder
		body.WriteString("<html><body><p>Hi ")
		body.WriteString(strings.Fields(to[0].Name + " there")[0])
		body.WriteString(",</p>")
		for range 1 + rng.IntN(6) {
			body.WriteString("<p>")
			for range 1 + rng.IntN(4) {
				body.WriteString(sentences[rng.IntN(len(sentences))])
				body.WriteByte(' ')
			}
			body.WriteString("</p>")
		}
		body.WriteString("<p>Best,<br>")
		body.WriteString(from.Name)
		body.WriteString("</p></body></html>")
		received := now.Add(-time.Duration(rng.Int64N(int64(window)))).Truncate(time.Second)
		ms := MessageSpec{
			Folder: f.ID, Subject: subj, From: from, To: to, Cc: cc, Body: body.String(),
			Received: received, IsRead: rng.IntN(3) != 0 || f.WellKnown == "sentitems",
			Importance:     []string{"normal", "normal", "normal", "normal", "high", "low"}[rng.IntN(6)],
			ConversationID: conv,
		}
		if rng.Float64() < spec.AttachmentShare {
			size := 1024 + rng.IntN(200*1024)
			content := make([]byte, size)
			for j := range content {
				content[j] = byte('a' + j%26)
			}
			ms.Attachments = []AttachmentSpec{{Name: fmt.Sprintf("document-%d.pdf", i), ContentType: "application/pdf", Content: content}}
		}
		m, err := s.buildMessage(u, &ms, now)
		if err != nil {
			return ids, err
		}
		u.mailbox.insert(m, now)
		if conv == "" && len(threads) < 5000 {
			threads = append(threads, thread{m.ConversationID, subj})
		}
		ids = append(ids, m.ImmutableID)
	}
	return ids, nil
}
