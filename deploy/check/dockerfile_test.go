package check

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// secretName matches a variable name that would carry a secret.
var secretName = regexp.MustCompile(`(?i)(TOKEN|PASSWORD|PASSWD|SECRET|API_KEY|PRIVATE|CREDENTIAL|DATABASE_URL)`)

func TestDockerfile(t *testing.T) {
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ast.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	stages, metaArgs, err := instructions.Parse(ast.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a final one", len(stages))
	}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if secretName.MatchString(kv.Key) {
				t.Errorf("ARG %s before FROM would carry a secret into the build", kv.Key)
			}
		}
	}
	build, final := stages[0], stages[len(stages)-1]

	var cgoOff bool
	for i, st := range stages {
		if strings.HasSuffix(st.BaseName, ":latest") || !strings.Contains(st.BaseName, ":") {
			t.Errorf("stage %q: base image %q has no pinned tag", st.Name, st.BaseName)
		}
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					if secretName.MatchString(kv.Key) {
						t.Errorf("stage %q: ENV %s carries a secret into the image", st.Name, kv.Key)
					}
				}
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					if secretName.MatchString(kv.Key) {
						t.Errorf("stage %q: ARG %s carries a secret into the build history", st.Name, kv.Key)
					}
				}
			case *instructions.RunCommand:
				if i == 0 && strings.Contains(strings.Join(c.CmdLine, " "), "CGO_ENABLED=0") {
					cgoOff = true
				}
			}
		}
	}
	if !cgoOff {
		t.Error("the build stage does not build with CGO_ENABLED=0: the binary would not be static")
	}
	if !strings.HasPrefix(final.BaseName, "gcr.io/distroless/static") {
		t.Errorf("final stage is %q, want distroless static", final.BaseName)
	}

	var user string
	var exposed []string
	var copied, entrypoint bool
	env := map[string]string{}
	for _, c := range final.Commands {
		switch c := c.(type) {
		case *instructions.UserCommand:
			user = c.User
		case *instructions.ExposeCommand:
			exposed = append(exposed, c.Ports...)
		case *instructions.CopyCommand:
			copied = copied || c.From == build.Name
		case *instructions.EntrypointCommand:
			entrypoint = slices.Equal(c.CmdLine, []string{"/usr/local/bin/outlookd"})
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				env[kv.Key] = kv.Value
			}
		case *instructions.RunCommand:
			t.Errorf("final stage RUNs %v: distroless has no shell", c.CmdLine)
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if uid == "" || uid == "0" || uid == "root" {
		t.Errorf("final stage runs as %q, want a non-root user", user)
	}
	if !copied {
		t.Errorf("final stage copies nothing from the build stage %q", build.Name)
	}
	if !entrypoint {
		t.Error("final stage's ENTRYPOINT is not the outlookd binary")
	}
	// The ports exposed are the ones outlookd listens on in the image.
	for _, tt := range []struct{ name, port string }{{"OUTLOOKD_HTTP_ADDR", "8080"}, {"OUTLOOKD_METRICS_ADDR", "9464"}} {
		if !strings.HasSuffix(env[tt.name], ":"+tt.port) {
			t.Errorf("ENV %s=%q, want it on port %s", tt.name, env[tt.name], tt.port)
		}
		if !slices.Contains(exposed, tt.port) {
			t.Errorf("EXPOSE %v lacks %s (%s)", exposed, tt.port, tt.name)
		}
	}
	// The image's environment is one outlookd accepts (secrets come later).
	vars := map[string]string{"VAULT_TOKEN": "placeholder", "OUTLOOKD_CLIENT_ID": "11111111-1111-1111-1111-111111111111",
		"OUTLOOKD_PUBLIC_URL": "https://outlookd.example.com"}
	for k, v := range env {
		vars[k] = v
	}
	serveEnv{vars: vars, api: true}.load(t)
	if !healthRoute(t, roleHandler("api"), "/healthz") || !healthRoute(t, roleHandler("worker"), "/healthz") {
		t.Error("outlookd (API or worker) does not answer /healthz, which the image's users probe")
	}
}
