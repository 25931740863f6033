package store_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/outlookd/outlookd/internal/testenv"
	"github.com/outlookd/outlookd/store"
)

func TestMigrateIsIdempotentAndConcurrencySafe(t *testing.T) {
	dsn := testenv.Postgres(t) // already migrated once
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			from, to, err := store.Migrate(ctx, dsn)
			if err == nil && (from != to || int(to) != store.LatestVersion()) {
				err = errors.New("migrate changed an up-to-date schema")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
