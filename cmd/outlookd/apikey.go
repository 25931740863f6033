package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/outlookd/outlookd/apikey"
	"github.com/outlookd/outlookd/config"
	"github.com/outlookd/outlookd/store"
)

const apikeyUsage = `Usage:
  outlookd apikey create --org ORG [--name NAME] [--admin] [--org-name NAME] [--connections-per-user N]
  outlookd apikey list --org ORG
  outlookd apikey revoke KEY_ID
`

var orgPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// apikeyCmd manages API keys: the key is printed once, at creation; only a
// hash of its secret is stored.
func apikeyCmd(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, apikeyUsage)
		return usageError{errors.New("no apikey command")}
	}
	fs := newFlagSet("apikey "+args[0], stderr)
	org := fs.String("org", "", "the organisation (lower-case letters, digits and dashes); created if new")
	name := fs.String("name", "", "a label for the key")
	admin := fs.Bool("admin", false, "an admin key: sees every connection of the organisation and manages its webhook endpoint")
	orgName := fs.String("org-name", "", "the organisation's display name")
	perUser := fs.Int("connections-per-user", 0, "how many live connections one app user may own (default 1)")
	rest := args[1:]
	var keyID string
	if args[0] == "revoke" && len(rest) > 0 {
		keyID, rest = rest[0], rest[1:]
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	_, st, err := openRegistry(ctx, environ)
	if err != nil {
		return err
	}
	defer st.Close()
	switch args[0] {
	case "create":
		if !orgPattern.MatchString(*org) {
			fmt.Fprintln(stderr, "outlookd apikey create: --org must be lower-case letters, digits and dashes")
			return usageError{errors.New("bad org")}
		}
		if *perUser < 0 {
			fmt.Fprintln(stderr, "outlookd apikey create: --connections-per-user must be positive")
			return usageError{errors.New("bad connections-per-user")}
		}
		o, err := st.UpsertOrg(ctx, *org, *orgName, *perUser)
		if err != nil {
			return err
		}
		key, id, hash := apikey.New()
		if err := st.InsertAPIKey(ctx, store.APIKey{ID: id, OrgID: o.ID, Name: *name, SecretHash: hash, Admin: *admin}); err != nil {
			return err
		}
		kind := "key"
		if *admin {
			kind = "admin key"
		}
		fmt.Fprintf(stderr, "created %s %s for organisation %s (%d connection(s) per user); it is shown once:\n", kind, id, o.ID, o.ConnectionsPerUser)
		fmt.Fprintln(stdout, key)
		return nil
	case "list":
		if *org == "" {
			fmt.Fprintln(stderr, "outlookd apikey list: --org is required")
			return usageError{errors.New("no org")}
		}
		keys, err := st.ListAPIKeys(ctx, *org)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "live"
			if k.RevokedAt != nil {
				state = "revoked " + k.RevokedAt.UTC().Format("2006-01-02")
			}
			fmt.Fprintf(stdout, "%s\tadmin=%t\t%s\tcreated %s\t%s\n", k.ID, k.Admin, state, k.CreatedAt.UTC().Format("2006-01-02"), k.Name)
		}
		return nil
	case "revoke":
		if keyID == "" {
			fmt.Fprint(stderr, apikeyUsage)
			return usageError{errors.New("no key ID")}
		}
		if err := st.RevokeAPIKey(ctx, keyID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked %s\n", keyID)
		return nil
	}
	fmt.Fprint(stderr, apikeyUsage)
	return usageError{fmt.Errorf("unknown apikey command %q", args[0])}
}

// openRegistry loads the configuration and opens the registry with a small
// pool, for the commands an operator runs by hand.
func openRegistry(ctx context.Context, environ []string) (config.Config, *store.Store, error) {
	cfg, err := config.LoadFrom(environ)
	if err != nil {
		return cfg, nil, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal(), 2)
	return cfg, st, err
}
