package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/outlookd/outlookd/config"
	"github.com/outlookd/outlookd/vault"
)

// appsecret stores the app registration's client secret in Vault, read
// from standard input so it never appears in a command line or a shell
// history.
func appsecret(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 || args[0] != "set" {
		fmt.Fprintln(stderr, "Usage: outlookd appsecret set   (reads the client secret from standard input)")
		return usageError{errors.New("no appsecret command")}
	}
	if err := parseFlags(newFlagSet("appsecret set", stderr), args[1:]); err != nil {
		return err
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	secret := strings.TrimSpace(line)
	if secret == "" {
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		fmt.Fprintln(stderr, "outlookd appsecret set: no secret on standard input")
		return usageError{errors.New("no secret")}
	}
	cfg, err := config.LoadFrom(environ)
	if err != nil {
		return err
	}
	if err := cfg.ValidateVaultAuth(); err != nil {
		return err
	}
	vc, err := vault.New(vault.Options{Addr: cfg.VaultAddr.String(), Token: cfg.VaultToken.Reveal(), RoleID: cfg.VaultRoleID,
		SecretIDFile: cfg.VaultSecretIDFile, KVMount: cfg.VaultKVMount, Prefix: cfg.VaultKVPrefix, Timeout: 10 * time.Second,
		Logger: newLogger(cfg, io.Discard)})
	if err != nil {
		return err
	}
	vctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	go func() { _ = vc.Run(vctx) }()
	for vc.Health(vctx) != nil {
		select {
		case <-vctx.Done():
			return fmt.Errorf("vault: could not log in: %w", vc.Health(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := vc.Tokens().PutAppSecret(vctx, secret); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "client secret stored in Vault at %s/%s/app\n", cfg.VaultKVMount, cfg.VaultKVPrefix)
	return nil
}

var stdin io.Reader = os.Stdin
