package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is an io.Writer the test reads while the build writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestToolBuildSaysWhereItIs: a run that finds another run building a tool
// says it waits for that build, and what the build has done so far; the
// build says what it compiles and how far it is, passes errors through,
// and is not repeated once the other run finished it.
func TestToolBuildSaysWhereItIs(t *testing.T) {
	old := buildReport
	buildReport = 50 * time.Millisecond
	t.Cleanup(func() { buildReport = old })
	cache := t.TempDir()
	builder := &stack{cache: cache, out: &syncBuffer{}}
	waiter := &stack{cache: cache, out: &syncBuffer{}}

	// A fake `go build -v`: modules, then packages, then the binary.
	release := filepath.Join(cache, "release")
	fake := func(out string) *exec.Cmd {
		return exec.Command("sh", "-c", `
			echo "go: downloading example.com/a v1.0.0" >&2
			echo "go: downloading example.com/b v1.2.0" >&2
			echo "example.com/a/internal/x" >&2
			echo "example.com/b" >&2
			echo "some warning: not an import path" >&2
			while [ ! -f "$1" ]; do sleep 0.02; done
			echo built > "$2"`, "sh", release, out)
	}
	type result struct {
		bin string
		err error
	}
	built := make(chan result, 1)
	go func() {
		bin, err := builder.tool("fake", "v1", "about a second", fake, nil)
		built <- result{bin, err}
	}()
	// The builder holds the lock: the waiter reports the build's progress.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(builder.out.(*syncBuffer).String(), "packages compiled"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the build never reported progress:\n%s", builder.out.(*syncBuffer).String())
		}
	}
	waited := make(chan result, 1)
	go func() {
		bin, err := waiter.tool("fake", "v1", "about a second", func(string) *exec.Cmd {
			return exec.Command("false") // never run: the other run builds it
		}, nil)
		waited <- result{bin, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(waiter.out.(*syncBuffer).String(), "2 packages compiled"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting run never said what it waits for:\n%s", waiter.out.(*syncBuffer).String())
		}
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, w := <-built, <-waited
	if b.err != nil || w.err != nil || b.bin != w.bin {
		t.Fatalf("build %+v, wait %+v", b, w)
	}
	bout, wout := builder.out.(*syncBuffer).String(), waiter.out.(*syncBuffer).String()
	for _, want := range []string{"building fake v1", "about a second", "2 modules downloaded, 2 packages compiled", "some warning: not an import path", "built fake v1 in"} {
		if !strings.Contains(bout, want) {
			t.Errorf("the build's output lacks %q:\n%s", want, bout)
		}
	}
	for _, want := range []string{"waiting for another run that is building fake v1", "fake.lock", "still waiting", "was built by the other run"} {
		if !strings.Contains(wout, want) {
			t.Errorf("the waiting run's output lacks %q:\n%s", want, wout)
		}
	}
	if strings.Contains(bout, "example.com/b\n") {
		t.Errorf("the build printed every package:\n%s", bout)
	}
	// The lock is free again.
	lock, err := os.OpenFile(filepath.Join(cache, "fake.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Errorf("the lock is still held: %v", err)
	}
}
