package nodelock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/unshim/unshim/pkg/lab/labtest"
)

// TestLock runs against the lab's real apiserver.
func TestLock(t *testing.T) {
	l := labtest.Require(t)
	c, err := l.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	node := "lock-" + time.Now().Format("150405.000000")

	a, err := Acquire(ctx, c, node, "run-a", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var held *HeldError
	if _, err := Acquire(ctx, c, node, "run-b", time.Minute); !errors.As(err, &held) || held.Holder != "run-a" {
		t.Fatalf("second holder got %v, want HeldError by run-a", err)
	}
	again, err := Acquire(ctx, c, node, "run-a", time.Minute)
	if err != nil || again.Holder != "run-a" {
		t.Fatalf("same holder re-acquire (a resumed run): %v", err)
	}
	// The first handle is stale now: releasing it must not drop the lock.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(ctx, c, node, "run-b", time.Minute); !errors.As(err, &held) {
		t.Fatalf("a stale handle released the lock: %v", err)
	}
	if err := again.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := Acquire(ctx, c, node, "run-b", 1*time.Second)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if err := b.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	// Expired: another run may take it over, and the old holder can no longer renew.
	cLock, err := Acquire(ctx, c, node, "run-c", time.Minute)
	if err != nil {
		t.Fatalf("take over an expired lock: %v", err)
	}
	if err := b.Renew(ctx); err == nil {
		t.Error("renewing a lock taken over succeeded")
	}
	if err := cLock.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// Many runs race for a free lock: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := Acquire(ctx, c, node+"-race", "racer-"+string(rune('a'+i)), time.Minute); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d racers got the lock, want 1", wins)
	}
}
