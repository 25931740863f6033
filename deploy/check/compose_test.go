package check

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

const composeDir = "../compose"

func loadCompose(env map[string]string) (*types.Project, error) {
	abs, err := filepath.Abs(composeDir)
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "compose.yaml")}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("outlookd", true)
		o.ResolvePaths = true
	})
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(map[string]string{"OUTLOOKD_CLIENT_ID": "11111111-1111-1111-1111-111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]string{
		"postgres": "postgres:", "temporal": "temporalio/auto-setup:", "temporal-ui": "temporalio/ui:", "vault": "hashicorp/vault:",
		"migrate": "outlookd:", "setup": "outlookd:", "api": "outlookd:", "worker": "outlookd:",
	}
	for name, prefix := range images {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		if !strings.HasPrefix(s.Image, prefix) || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s runs %q, want a pinned %s... image", name, s.Image, prefix)
		}
	}
	for name := range p.Services {
		if _, ok := images[name]; !ok {
			t.Errorf("service %s is not one this test knows", name)
		}
	}
	if b := p.Services["migrate"].Build; b == nil || filepath.Base(b.Dockerfile) != "Dockerfile" {
		t.Error("the migrate service does not build outlookd's image from deploy/Dockerfile")
	}

	for _, tt := range []struct {
		service string
		api     bool
		command []string
	}{
		{"api", true, []string{"serve", "--role", "api"}},
		{"worker", false, []string{"serve", "--role", "worker"}},
	} {
		t.Run(tt.service, func(t *testing.T) {
			s := p.Services[tt.service]
			if strings.Join(s.Command, " ") != strings.Join(tt.command, " ") {
				t.Errorf("command %v, want %v", s.Command, tt.command)
			}
			for _, dep := range []string{"migrate", "setup"} {
				if d, ok := s.DependsOn[dep]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
					t.Errorf("does not wait for %s to complete", dep)
				}
			}
			vars := map[string]string{}
			for k, v := range s.Environment {
				if v == nil {
					t.Errorf("%s has no value", k)
					continue
				}
				vars[k] = *v
			}
			prof := serveEnv{vars: vars, api: tt.api}.load(t)
			if prof.Address != "temporal:7233" || prof.Namespace != "outlookd" {
				t.Errorf("Temporal %s/%s, want temporal:7233/outlookd", prof.Address, prof.Namespace)
			}
		})
	}
	if s := p.Services["migrate"]; strings.Join(s.Command, " ") != "migrate --create-database" {
		t.Errorf("migrate runs %v", s.Command)
	}
	if s := p.Services["setup"]; len(s.Command) == 0 || s.Command[0] != "setup" {
		t.Errorf("setup runs %v", s.Command)
	}
}

// TestComposeKeepsSecretsInDevEnvFiles reads compose.yaml as written: no
// environment entry holds a secret; those come from dev-*.env files, each
// marked as dev only.
func TestComposeKeepsSecretsInDevEnvFiles(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(composeDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Environment map[string]any `json:"environment"`
			EnvFile     []string       `json:"env_file"`
		} `json:"services"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	for name, s := range doc.Services {
		for k := range s.Environment {
			if secretName.MatchString(k) {
				t.Errorf("service %s sets %s inline: a secret belongs in a dev-*.env file", name, k)
			}
		}
		for _, f := range s.EnvFile {
			if !strings.HasPrefix(f, "dev-") {
				t.Errorf("service %s reads %s: env files of secrets are named dev-*.env", name, f)
			}
			files[f] = true
		}
	}
	if len(files) == 0 {
		t.Fatal("no env files")
	}
	for f := range files {
		fh, err := os.Open(filepath.Join(composeDir, f))
		if err != nil {
			t.Fatal(err)
		}
		first, _ := bufio.NewReader(fh).ReadString('\n')
		fh.Close()
		if !strings.HasPrefix(first, "# DEV ONLY") {
			t.Errorf("%s does not start with a DEV ONLY line: %q", f, first)
		}
	}
}

// TestComposeNeedsAClientID: without the app registration's ID the file
// does not load, rather than start an API that refuses to run.
func TestComposeNeedsAClientID(t *testing.T) {
	if _, err := loadCompose(map[string]string{}); err == nil || !strings.Contains(err.Error(), "OUTLOOKD_CLIENT_ID") {
		t.Errorf("loaded without OUTLOOKD_CLIENT_ID (err %v)", err)
	}
}
