package api_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outlookd/outlookd/api"
	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
	"github.com/outlookd/outlookd/workflows"
)

// TestUploadThroughput measures an upload through the API into Postgres:
// a file of OUTLOOKD_MEASURE_UPLOAD_MB (100) in ranges of 4 MiB, its
// MB/s, and the process's peak heap while it runs (sampled every 5 ms; the
// client's one 4 MiB range is in it). It runs only when asked:
//
//	OUTLOOKD_MEASURE_UPLOAD_MB=100 DATABASE_URL=... go test -run TestUploadThroughput -v ./api
func TestUploadThroughput(t *testing.T) {
	mbs, _ := strconv.Atoi(os.Getenv("OUTLOOKD_MEASURE_UPLOAD_MB"))
	if mbs <= 0 {
		t.Skip("set OUTLOOKD_MEASURE_UPLOAD_MB to measure")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, testenv.Postgres(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if _, err := st.UpsertOrg(ctx, "measure", "measure", 0); err != nil {
		t.Fatal(err)
	}
	key, kid, hash := apikey.New()
	if err := st.InsertAPIKey(ctx, store.APIKey{ID: kid, OrgID: "measure", SecretHash: hash}); err != nil {
		t.Fatal(err)
	}
	conn := store.Connection{ID: "conn_measure000000000", OrgID: "measure", OwnerID: "u-1", State: workflows.StateActive, Mode: "delegated"}
	if err := st.CreateConnection(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateConnection(ctx, conn.ID, store.ConnectionUpdate{UserID: "user-1", Mailbox: "m@contoso.example", TenantID: "t-1",
		GrantedScopes: []string{"Mail.Send", "Mail.ReadWrite"}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.NewRouter(api.Deps{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Store: st, RateLimit: 1000, RateBurst: 1000}))
	t.Cleanup(srv.Close)
	size := mbs << 20
	create := fmt.Sprintf(`{"name":"measure.bin","size":%d}`, size)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/connections/"+conn.ID+"/uploads", bytes.NewReader([]byte(create)))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set(api.UserHeader, "u-1")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 201 {
		t.Fatalf("create: %v %v", resp, err)
	}
	var u uploadView
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	(response{status: 201, body: raw}).json(t, &u)

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	const rng = 4 << 20
	buf := make([]byte, rng)
	start := time.Now()
	for first := 0; first < size; first += rng {
		n := min(rng, size-first)
		for i := range buf[:n] {
			buf[i] = byte(first + i)
		}
		req, _ := http.NewRequest("PUT", srv.URL+u.UploadURL, bytes.NewReader(buf[:n]))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set(api.UserHeader, "u-1")
		req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, first+n-1, size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 201 {
			t.Fatalf("range at %d: %d", first, resp.StatusCode)
		}
	}
	took := time.Since(start)
	close(stop)
	wg.Wait()
	got, err := st.GetUpload(ctx, conn.ID, u.ID)
	if err != nil || !got.Complete() {
		t.Fatalf("not complete: %+v %v", got, err)
	}
	runtime.ReadMemStats(&ms)
	t.Logf("%d MiB in %d ranges of 4 MiB: %v, %.1f MiB/s; heap in use %.1f MiB before, peak %.1f MiB; %.0f MiB allocated in all",
		mbs, (size+rng-1)/rng, took.Round(time.Millisecond), float64(mbs)/took.Seconds(),
		float64(base)/(1<<20), float64(peak.Load())/(1<<20), float64(ms.TotalAlloc)/(1<<20))
}
