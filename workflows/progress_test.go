package workflows

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
)

func TestBackfillEstimate(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		folders []FolderProgress
		now     time.Time
		want    BackfillEstimate
	}{
		{"nothing fetched yet", []FolderProgress{{ID: "a", Total: 100}, {ID: "b", Total: 300}}, start.Add(time.Minute),
			BackfillEstimate{Total: 400}},
		{"a quarter in a minute", []FolderProgress{{ID: "a", Total: 100, Fetched: 100}, {ID: "b", Total: 300}}, start.Add(time.Minute),
			BackfillEstimate{Fetched: 100, Total: 400, Percent: 25, EstimatedEnd: start.Add(4 * time.Minute)}},
		{"a folder done below its total counts what it fetched", []FolderProgress{{ID: "a", Total: 100, Fetched: 60, Done: true}, {ID: "b", Total: 60, Fetched: 30}}, start.Add(time.Minute),
			BackfillEstimate{Fetched: 90, Total: 120, Percent: 75, EstimatedEnd: start.Add(time.Minute + 20*time.Second)}},
		{"more than the total", []FolderProgress{{ID: "a", Total: 10, Fetched: 20}}, start.Add(time.Minute),
			BackfillEstimate{Fetched: 20, Total: 20, Percent: 100, EstimatedEnd: start.Add(time.Minute)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := BackfillState{Started: start, Folders: map[string]FolderProgress{}}
			for _, f := range tt.folders {
				b.Folders[f.ID] = f
			}
			if got := *estimate(b, tt.now); got != tt.want {
				t.Errorf("estimate = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// Every folder is in the progress from the start, with Graph's total, and
// keeps it as its pages come in.
func TestBackfillProgressFromTheStart(t *testing.T) {
	env, f := newEnv(t)
	for i := range f.folders {
		f.folders[i].Total = int64(100 * (i + 1))
	}
	env.RegisterDelayedCallback(func() {
		update(t, env, UpdateConsent, ConsentInput{Ref: "ref-0123456789"}, nil)
	}, time.Minute)
	endWith(env, time.Hour, func() {
		st := query(t, env)
		if len(st.Backfill.Folders) != 3 {
			t.Fatalf("folders %+v", st.Backfill.Folders)
		}
		for _, fr := range f.folders {
			if p := st.Backfill.Folders[fr.ID]; p.Total != fr.Total || !p.Done {
				t.Errorf("folder %s: %+v, want total %d", fr.ID, p, fr.Total)
			}
		}
		if st.Progress != nil || st.Backfill.Started.IsZero() {
			t.Errorf("after the backfill: progress %+v, started %v", st.Progress, st.Backfill.Started)
		}
	})
	env.ExecuteWorkflow(Connection, input())
}

// The backfill child's first word to its parent lists every folder with
// its total, before any page. Then the pages' progress follows in
// batches, and no page waits for a signal: here the first signal of
// progress is held until every page has been read.
func TestBackfillTellsEveryFolderFirst(t *testing.T) {
	env, f := newEnv(t)
	for i := range f.folders {
		f.folders[i].Total = int64(10 * (i + 1))
	}
	var mu sync.Mutex
	var signals []BackfillProgress
	held := false
	env.OnSignalExternalWorkflow(mock.Anything, "parent", "", SignalBackfillProgress, mock.Anything).Return(
		func(_, _, _ string, _ string, arg any) error {
			p := arg.(BackfillProgress)
			mu.Lock()
			signals = append(signals, p)
			first := len(p.Updates) > 0 && !held
			held = held || first
			mu.Unlock()
			if first {
				pages := func() int {
					f.mu.Lock()
					defer f.mu.Unlock()
					return len(f.backfills)
				}
				for deadline := time.Now().Add(5 * time.Second); pages() < 6; time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Errorf("%d of 6 pages read while a progress signal was under way: the pages wait for it", pages())
						break
					}
				}
			}
			return nil
		})
	env.ExecuteWorkflow(Backfill, BackfillInput{ConnectionID: "c1", ParentID: "parent", Run: 1, UserID: "u-1", Roots: []string{"inbox"}, PageSize: 10, Concurrency: 2})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// The signals' mocks run beside the workflow, which does not wait for
	// them: the folders' totals may be seen after the backfill has ended
	// (its signal was issued before the first page, as the replay
	// histories show), updates sent last may be cut off by its result.
	var upfront []BackfillProgress
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		upfront = slices.DeleteFunc(slices.Clone(signals), func(p BackfillProgress) bool { return len(p.Folders) == 0 })
		mu.Unlock()
		if len(upfront) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(upfront) != 1 || upfront[0].Folder.ID != "" || len(upfront[0].Folders) != 3 {
		t.Fatalf("signals of every folder's total: %+v", upfront)
	}
	for i, p := range upfront[0].Folders {
		if p.Total != int64(10*(i+1)) || p.Fetched != 0 || p.Done {
			t.Errorf("upfront folder %+v", p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	last := map[string]FolderProgress{}
	for _, s := range signals {
		if len(s.Folders) != 0 {
			continue
		}
		if s.Folder.ID != "" || len(s.Updates) == 0 {
			t.Errorf("a page's signal %+v", s)
		}
		for _, u := range s.Updates {
			if u.Total == 0 || u.Fetched < last[u.ID].Fetched {
				t.Errorf("update %+v after %+v", u, last[u.ID])
			}
			last[u.ID] = u
		}
	}
	if len(signals) > 1+6 {
		t.Errorf("%d signals for 6 pages and the folders' totals", len(signals))
	}
}
