package check

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const chartDir = "../helm/outlookd"

// rendered is a chart's objects, decoded strictly into their types.
type rendered struct {
	deployments     map[string]*appsv1.Deployment // by component
	services        []*corev1.Service
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
	pdbs            []*policyv1.PodDisruptionBudget
	jobs            []*batchv1.Job
	serviceAccounts []*corev1.ServiceAccount
	serviceMonitors []*monitoringv1.ServiceMonitor
	text            string
}

func values(t *testing.T, files []string, overrides string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, f := range files {
		v, err := chartutil.ReadValuesFile(filepath.Join(chartDir, f))
		if err != nil {
			t.Fatal(err)
		}
		vals = chartutil.MergeTables(v.AsMap(), vals)
	}
	if overrides != "" {
		v, err := chartutil.ReadValues([]byte(overrides))
		if err != nil {
			t.Fatal(err)
		}
		vals = chartutil.MergeTables(v.AsMap(), vals)
	}
	return vals
}

// render renders the chart with vals as `helm template` would for an
// install, and decodes every object strictly: a field its type lacks fails.
func render(t *testing.T, vals map[string]any) (rendered, error) {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := chrt.Validate(); err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{Name: "outlookd", Namespace: "mail", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(chrt, rv)
	if err != nil {
		return rendered{}, err
	}
	out := rendered{deployments: map[string]*appsv1.Deployment{}}
	var names []string
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		out.text += files[name]
		for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				t.Fatalf("%s: %v\n%s", name, err, doc)
			}
			strict := func(into any) {
				t.Helper()
				if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
					t.Fatalf("%s: %s %s does not decode strictly: %v\n%s", name, head.APIVersion, head.Kind, err, doc)
				}
			}
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				strict(d)
				out.deployments[d.Labels["app.kubernetes.io/component"]] = d
			case "v1 Service":
				s := &corev1.Service{}
				strict(s)
				out.services = append(out.services, s)
			case "autoscaling/v2 HorizontalPodAutoscaler":
				h := &autoscalingv2.HorizontalPodAutoscaler{}
				strict(h)
				out.hpas = append(out.hpas, h)
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				strict(p)
				out.pdbs = append(out.pdbs, p)
			case "batch/v1 Job":
				j := &batchv1.Job{}
				strict(j)
				out.jobs = append(out.jobs, j)
			case "v1 ServiceAccount":
				s := &corev1.ServiceAccount{}
				strict(s)
				out.serviceAccounts = append(out.serviceAccounts, s)
			case "monitoring.coreos.com/v1 ServiceMonitor":
				s := &monitoringv1.ServiceMonitor{}
				strict(s)
				out.serviceMonitors = append(out.serviceMonitors, s)
			default:
				t.Fatalf("%s: %s %s is not a kind this test checks", name, head.APIVersion, head.Kind)
			}
		}
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func TestChartLints(t *testing.T) {
	for _, files := range [][]string{{"values.yaml"}, {"values.yaml", "values-temporal-cloud.yaml"}} {
		l := lint.All(chartDir, values(t, files, ""), "mail", true)
		for _, m := range l.Messages {
			if m.Severity > support.InfoSev {
				t.Errorf("helm lint with %v: %s", files, m)
			}
		}
	}
}

func TestChart(t *testing.T) {
	dir := t.TempDir()
	writeClientCert(t, dir, "tls.crt", "tls.key")
	tests := []struct {
		name      string
		files     []string
		overrides string
		// Temporal as temporalconn resolves it from the Deployment's env.
		address, namespace string
		tls, apiKey, mtls  bool
		agent, monitor     bool
		setupArgs          []string
	}{
		{name: "defaults", files: []string{"values.yaml"},
			address: "temporal-frontend.temporal.svc.cluster.local:7233", namespace: "outlookd",
			setupArgs: []string{"setup", "--timeout", "2m"}},
		{name: "Temporal Cloud with an API key", files: []string{"values.yaml", "values-temporal-cloud.yaml"},
			address: "us-east-1.aws.api.temporal.io:7233", namespace: "outlookd.a1b2c", tls: true, apiKey: true,
			setupArgs: []string{"setup", "--check", "--timeout", "2m"}},
		{name: "Temporal Cloud with mTLS", files: []string{"values.yaml", "values-temporal-cloud.yaml"},
			overrides: "temporal:\n  address: outlookd.a1b2c.tmprl.cloud:7233\n  apiKey: {existingSecret: \"\"}\n  mtls: {existingSecret: outlookd-temporal-mtls}\n",
			address:   "outlookd.a1b2c.tmprl.cloud:7233", namespace: "outlookd.a1b2c", tls: true, mtls: true,
			setupArgs: []string{"setup", "--check", "--timeout", "2m"}},
		{name: "Vault agent injector and a ServiceMonitor", files: []string{"values.yaml"},
			overrides: "vault:\n  agentInjector: {enabled: true}\nmetrics:\n  serviceMonitor: {enabled: true}\napi:\n  autoscaling: {enabled: false}\n",
			address:   "temporal-frontend.temporal.svc.cluster.local:7233", namespace: "outlookd", agent: true, monitor: true,
			setupArgs: []string{"setup", "--timeout", "2m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := render(t, values(t, tt.files, tt.overrides))
			if err != nil {
				t.Fatal(err)
			}
			if len(r.serviceAccounts) != 1 {
				t.Errorf("%d service accounts, want 1", len(r.serviceAccounts))
			}
			api, worker := r.deployments["api"], r.deployments["worker"]
			if api == nil || worker == nil {
				t.Fatalf("deployments %v, want api and worker", r.deployments)
			}
			for _, d := range []*appsv1.Deployment{api, worker} {
				checkPod(t, d.Name, d.Spec.Template.Spec)
				sel, err := metav1LabelSelector(d)
				if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("%s: selector does not match its pods (%v)", d.Name, err)
				}
				c := d.Spec.Template.Spec.Containers[0]
				if c.LivenessProbe == nil {
					t.Errorf("%s: no liveness probe", d.Name)
				}
				vars := envOf(t, c, dir)
				prof := serveEnv{vars: vars, api: d == api}.load(t)
				if prof.Address != tt.address || prof.Namespace != tt.namespace || prof.TLS != tt.tls || prof.APIKey != tt.apiKey || prof.MTLS != tt.mtls {
					t.Errorf("%s: Temporal resolves to %+v, want %s/%s tls=%v apiKey=%v mtls=%v", d.Name, prof, tt.address, tt.namespace, tt.tls, tt.apiKey, tt.mtls)
				}
				ann := d.Spec.Template.Annotations["vault.hashicorp.com/agent-inject"]
				if (ann == "true") != tt.agent {
					t.Errorf("%s: vault agent-inject annotation %q with the injector enabled=%v", d.Name, ann, tt.agent)
				}
				if tt.agent && vars["OUTLOOKD_VAULT_SECRET_ID_FILE"] != "/vault/secrets/secret-id" {
					t.Errorf("%s: reads the AppRole secret ID from %q, not the injector's file", d.Name, vars["OUTLOOKD_VAULT_SECRET_ID_FILE"])
				}
			}
			checkProbes(t, "api", api)
			checkProbes(t, "worker", worker)
			checkServices(t, r, api, worker)
			checkScaling(t, r)
			checkSetupJob(t, r, tt.setupArgs)
			if got := len(r.serviceMonitors); (got == 1) != tt.monitor {
				t.Errorf("%d ServiceMonitors with it enabled=%v", got, tt.monitor)
			}
			for _, sm := range r.serviceMonitors {
				for _, ep := range sm.Spec.Endpoints {
					if ep.Port != "metrics" {
						t.Errorf("ServiceMonitor scrapes port %q", ep.Port)
					}
				}
			}
			if strings.Contains(r.text, "kind: Secret\n") {
				t.Error("the chart renders a Secret: secrets are referenced, never rendered")
			}
		})
	}
}

// TestChartRefusesSecretsInValues: a secret put in config stops the render.
func TestChartRefusesSecretsInValues(t *testing.T) {
	for _, v := range []string{"VAULT_TOKEN", "DATABASE_URL", "TEMPORAL_API_KEY"} {
		_, err := render(t, values(t, []string{"values.yaml"}, "config:\n  "+v+": not-here\n"))
		if err == nil || !strings.Contains(err.Error(), "config."+v) {
			t.Errorf("config.%s rendered (err %v)", v, err)
		}
	}
	_, err := render(t, values(t, []string{"values.yaml", "values-temporal-cloud.yaml"}, "temporal:\n  mtls: {existingSecret: both}\n"))
	if err == nil || !strings.Contains(err.Error(), "not both") {
		t.Errorf("an API key and mTLS together rendered (err %v)", err)
	}
}

func metav1LabelSelector(d *appsv1.Deployment) (labels.Selector, error) {
	return labels.ValidatedSelectorFromSet(d.Spec.Selector.MatchLabels)
}

// checkPod checks what every pod of the chart must have: a non-root user,
// locked-down containers with resources, and secrets only by reference.
func checkPod(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("%s: the pod does not run as a non-root user", name)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
			!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s/%s: container not locked down: %+v", name, c.Name, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s/%s: resources %+v, want cpu and memory requests and a memory limit", name, c.Name, c.Resources)
		}
		if !strings.HasPrefix(c.Image, "outlookd:") {
			t.Errorf("%s/%s: image %q", name, c.Name, c.Image)
		}
		for _, e := range c.Env {
			if secretVars[e.Name] && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
				t.Errorf("%s/%s: %s is not read from a Secret", name, c.Name, e.Name)
			}
		}
	}
}

// envOf returns a container's environment with each Secret reference
// replaced by a value of the right shape, and the mTLS files' paths moved
// to dir, where a test certificate is.
func envOf(t *testing.T, c corev1.Container, dir string) map[string]string {
	t.Helper()
	placeholders := map[string]string{
		"DATABASE_URL":     "postgres://outlookd:placeholder@postgres.example:5432/outlookd?sslmode=require",
		"TEMPORAL_API_KEY": "placeholder-api-key",
	}
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			p, ok := placeholders[e.Name]
			if !ok {
				t.Errorf("%s: %s from a Secret is not a setting this test knows", c.Name, e.Name)
			}
			vars[e.Name] = p
		case e.ValueFrom != nil:
			t.Errorf("%s: %s comes from %+v", c.Name, e.Name, e.ValueFrom)
		default:
			vars[e.Name] = e.Value
		}
	}
	for _, k := range []string{"TEMPORAL_TLS_CLIENT_CERT_PATH", "TEMPORAL_TLS_CLIENT_KEY_PATH"} {
		if p, ok := vars[k]; ok {
			mounted := false
			for _, m := range c.VolumeMounts {
				if strings.HasPrefix(p, m.MountPath+"/") {
					mounted = true
					vars[k] = filepath.Join(dir, strings.TrimPrefix(p, m.MountPath+"/"))
				}
			}
			if !mounted {
				t.Errorf("%s: %s=%s is on no mounted volume", c.Name, k, p)
			}
		}
	}
	return vars
}

// checkProbes checks a deployment's liveness and readiness probes: HTTP
// gets of /healthz and /readyz on a declared port, which outlookd's
// handler for that role (serve names it) answers.
func checkProbes(t *testing.T, role string, d *appsv1.Deployment) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	ports := map[string]bool{}
	for _, p := range c.Ports {
		ports[p.Name] = true
	}
	for _, tt := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if tt.probe == nil || tt.probe.HTTPGet == nil {
			t.Errorf("%s: no %s httpGet probe", role, tt.kind)
			continue
		}
		if tt.probe.HTTPGet.Path != tt.path || !ports[tt.probe.HTTPGet.Port.String()] {
			t.Errorf("%s: %s probe %s on %s, want %s on a declared port", role, tt.kind, tt.probe.HTTPGet.Path, tt.probe.HTTPGet.Port.String(), tt.path)
		}
		if !healthRoute(t, roleHandler(role), tt.path) {
			t.Errorf("%s: outlookd's handler does not answer the %s probe's %s", role, tt.kind, tt.path)
		}
	}
}

func checkServices(t *testing.T, r rendered, api, worker *appsv1.Deployment) {
	t.Helper()
	for _, s := range r.services {
		var target *appsv1.Deployment
		for _, d := range []*appsv1.Deployment{api, worker} {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				target = d
			}
		}
		if target == nil {
			t.Errorf("service %s selects no pod of the chart", s.Name)
			continue
		}
		declared := map[string]bool{}
		for _, p := range target.Spec.Template.Spec.Containers[0].Ports {
			declared[p.Name] = true
		}
		for _, p := range s.Spec.Ports {
			if !declared[p.TargetPort.String()] {
				t.Errorf("service %s targets port %s, which %s does not declare", s.Name, p.TargetPort.String(), target.Name)
			}
		}
	}
}

func checkScaling(t *testing.T, r rendered) {
	t.Helper()
	for _, h := range r.hpas {
		d := r.deployments[h.Labels["app.kubernetes.io/component"]]
		if d == nil || h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("HPA %s scales %+v, not one of the chart's Deployments", h.Name, h.Spec.ScaleTargetRef)
			continue
		}
		if d.Spec.Replicas != nil {
			t.Errorf("%s sets replicas while HPA %s scales it", d.Name, h.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			t.Errorf("HPA %s: %v..%d replicas", h.Name, h.Spec.MinReplicas, h.Spec.MaxReplicas)
		}
	}
	if len(r.pdbs) != 2 {
		t.Errorf("%d PodDisruptionBudgets, want one for the API and one for the workers", len(r.pdbs))
	}
	for _, p := range r.pdbs {
		d := r.deployments[p.Labels["app.kubernetes.io/component"]]
		if d == nil || !labels.SelectorFromSet(p.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("PDB %s selects no Deployment's pods", p.Name)
		}
	}
}

func checkSetupJob(t *testing.T, r rendered, setupArgs []string) {
	t.Helper()
	if len(r.jobs) != 1 {
		t.Fatalf("%d jobs, want the setup hook", len(r.jobs))
	}
	j := r.jobs[0]
	if hook := j.Annotations["helm.sh/hook"]; hook != "pre-install,pre-upgrade" {
		t.Errorf("job %s: hook %q", j.Name, hook)
	}
	spec := j.Spec.Template.Spec
	checkPod(t, j.Name, spec)
	if spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("job %s: restartPolicy %s", j.Name, spec.RestartPolicy)
	}
	if len(spec.InitContainers) != 1 || !slices.Equal(spec.InitContainers[0].Args, []string{"migrate"}) {
		t.Errorf("job %s does not migrate first: %+v", j.Name, spec.InitContainers)
	}
	if len(spec.Containers) != 1 || !slices.Equal(spec.Containers[0].Args, setupArgs) {
		t.Errorf("job %s runs %v, want %v", j.Name, spec.Containers[0].Args, setupArgs)
	}
	// Hooks run before the release's objects exist: the Job may use none.
	if spec.ServiceAccountName != "" {
		t.Errorf("job %s uses service account %s, which a pre-install hook cannot rely on", j.Name, spec.ServiceAccountName)
	}
}

// writeClientCert writes a self-signed client certificate and its key, as
// a kubernetes.io/tls Secret mounts them.
func writeClientCert(t *testing.T, dir, certName, keyName string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "outlookd"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{certName: {Type: "CERTIFICATE", Bytes: der}, keyName: {Type: "PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
