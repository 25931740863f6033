package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func (s *stack) pidFile(name string) string { return filepath.Join(s.dir, name+".pid") }
func (s *stack) logFile(name string) string { return filepath.Join(s.dir, name+".log") }

// startProcess starts bin in its own session, so it outlives this program,
// with output appended to <name>.log and its pid in <name>.pid.
func (s *stack) startProcess(name, bin string, args ...string) error {
	logf, err := os.OpenFile(s.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	// Reap the child if it dies while we wait for it, so it is seen as gone.
	go func() { _ = cmd.Wait() }()
	return writeFileAtomic(s.pidFile(name), []byte(strconv.Itoa(pid)+"\n"+bin+"\n"), 0o600)
}

// runningPID returns the pid of the component this stack started, or 0 when
// the pid file is missing or names a process that is gone or is not ours.
func (s *stack) runningPID(name string) int {
	b, err := os.ReadFile(s.pidFile(name))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil || pid <= 0 {
		return 0
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || strings.TrimSuffix(exe, " (deleted)") != fields[1] {
		return 0
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// A zombie is as good as gone.
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return 0
		}
	}
	return pid
}

// stopProcess stops a component this stack started: SIGTERM, then SIGKILL
// after 15 s. Processes it did not start are never touched.
func (s *stack) stopProcess(name string) error {
	pid := s.runningPID(name)
	if pid == 0 {
		_ = os.Remove(s.pidFile(name))
		s.logf("%-9s not running (nothing to stop)", name)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", name, pid, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for s.runningPID(name) != 0 {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			time.Sleep(200 * time.Millisecond)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = os.Remove(s.pidFile(name))
	s.logf("%-9s stopped (pid %d)", name, pid)
	return nil
}

// portOpen tells whether something accepts TCP connections at addr.
func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitFor polls check until it succeeds, the process dies, or timeout.
func (s *stack) waitFor(ctx context.Context, name string, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		if s.runningPID(name) == 0 {
			return fmt.Errorf("%s exited while starting (%v); see %s", name, last, s.logFile(name))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %s (%v); see %s", name, timeout, last, s.logFile(name))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
