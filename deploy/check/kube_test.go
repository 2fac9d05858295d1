package check

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// objects is a rendered overlay, decoded into the official API types.
type objects struct {
	namespace  string
	sts        []*appsv1.StatefulSet
	services   []*corev1.Service
	configMaps []*corev1.ConfigMap
	secrets    []*corev1.Secret
	ingresses  []*networkingv1.Ingress
	pdbs       []*policyv1.PodDisruptionBudget
	hpas       []*autoscalingv2.HorizontalPodAutoscaler
	monitors   []*monitoringv1.ServiceMonitor
	namespaces []*corev1.Namespace
}

// render builds an overlay as `kubectl apply -k` would and decodes every object strictly:
// an unknown or misplaced field is an error, as is a kind not listed here.
func render(t *testing.T, overlay string) objects {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repo, "deploy/kubernetes/overlays", overlay))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	var o objects
	for _, res := range rm.Resources() {
		js, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := res.GetGvk()
		key := gvk.ApiVersion() + "/" + gvk.Kind
		var target any
		switch key {
		case "apps/v1/StatefulSet":
			v := &appsv1.StatefulSet{}
			o.sts, target = append(o.sts, v), v
		case "v1/Service":
			v := &corev1.Service{}
			o.services, target = append(o.services, v), v
		case "v1/ConfigMap":
			v := &corev1.ConfigMap{}
			o.configMaps, target = append(o.configMaps, v), v
		case "v1/Secret":
			v := &corev1.Secret{}
			o.secrets, target = append(o.secrets, v), v
		case "v1/Namespace":
			v := &corev1.Namespace{}
			o.namespaces, target = append(o.namespaces, v), v
		case "networking.k8s.io/v1/Ingress":
			v := &networkingv1.Ingress{}
			o.ingresses, target = append(o.ingresses, v), v
		case "policy/v1/PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			o.pdbs, target = append(o.pdbs, v), v
		case "autoscaling/v2/HorizontalPodAutoscaler":
			v := &autoscalingv2.HorizontalPodAutoscaler{}
			o.hpas, target = append(o.hpas, v), v
		case "monitoring.coreos.com/v1/ServiceMonitor":
			v := &monitoringv1.ServiceMonitor{}
			o.monitors, target = append(o.monitors, v), v
		default:
			t.Errorf("%s: unexpected kind %s (add it to render with its Go type)", overlay, key)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			t.Errorf("%s: %s %s: %v", overlay, key, res.GetName(), err)
		}
		if gvk.Kind != "Namespace" {
			if res.GetNamespace() == "" {
				t.Errorf("%s: %s %s has no namespace", overlay, key, res.GetName())
			}
			o.namespace = res.GetNamespace()
		}
	}
	return o
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetes(t *testing.T) {
	for _, overlay := range []string{"dev", "production"} {
		t.Run(overlay, func(t *testing.T) {
			o := render(t, overlay)
			checkKubernetes(t, overlay, o)
		})
	}
}

func checkKubernetes(t *testing.T, overlay string, o objects) {
	if len(o.sts) != 1 || len(o.hpas) != 1 || len(o.pdbs) != 1 || len(o.monitors) != 1 || len(o.ingresses) != 1 {
		t.Fatalf("want one StatefulSet, HPA, PDB, ServiceMonitor and Ingress; got %d %d %d %d %d", len(o.sts), len(o.hpas), len(o.pdbs), len(o.monitors), len(o.ingresses))
	}
	if len(o.namespaces) != 1 || o.namespaces[0].Name != o.namespace {
		t.Errorf("the overlay must create its namespace %q", o.namespace)
	}
	sts := o.sts[0]
	pod := sts.Spec.Template
	if !selects(sts.Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("StatefulSet selector %v does not select its pods %v", sts.Spec.Selector.MatchLabels, pod.Labels)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) || len(c.Command) != 0 {
		t.Errorf("container runs %v %v; want the image's entrypoint with args [serve]", c.Command, c.Args)
	}

	cms := map[string]*corev1.ConfigMap{}
	for _, cm := range o.configMaps {
		cms[cm.Name] = cm
	}
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || cms[ef.ConfigMapRef.Name] == nil {
			t.Fatalf("envFrom %+v: no such ConfigMap in the overlay", ef)
		}
		for k, v := range cms[ef.ConfigMapRef.Name].Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("env %s uses valueFrom; secrets are files (ARUBUG_<NAME>_FILE)", e.Name)
		}
		env[e.Name] = e.Value
	}
	checkEnvNames(t, overlay+" StatefulSet", env)

	// Ports and probes match what the binary serves.
	_, port, _ := strings.Cut(env["ARUBUG_ADDR"], ":")
	var httpPort int32
	for _, p := range c.Ports {
		if p.Name == "http" {
			httpPort = p.ContainerPort
		}
	}
	if fmt.Sprint(httpPort) != port {
		t.Errorf("containerPort http %d, ARUBUG_ADDR %q", httpPort, env["ARUBUG_ADDR"])
	}
	probe := func(name string, p *corev1.Probe, want string) {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe missing", name)
			return
		}
		if p.HTTPGet.Path != want || (p.HTTPGet.Port != intstr.FromString("http") && p.HTTPGet.Port != intstr.FromInt32(httpPort)) {
			t.Errorf("%s probe %s on %v, want %s on http", name, p.HTTPGet.Path, p.HTTPGet.Port.String(), want)
		}
	}
	probe("liveness", c.LivenessProbe, "/_health")
	probe("startup", c.StartupProbe, "/_health")
	probe("readiness", c.ReadinessProbe, "/_ready")

	// Shutdown fits in the grace period.
	shutdown, err := time.ParseDuration(env["ARUBUG_SHUTDOWN_TIMEOUT"])
	if err != nil {
		shutdown = 30 * time.Second
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= preStop+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v must exceed preStop %s + ARUBUG_SHUTDOWN_TIMEOUT %s", g, preStop, shutdown)
	}

	// Security: non-root, read-only root, no capabilities.
	psc, csc := pod.Spec.SecurityContext, c.SecurityContext
	if psc == nil || csc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod securityContext must run as a non-root uid")
	}
	if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
		csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
		csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("container securityContext: want readOnlyRootFilesystem, no privilege escalation, drop ALL: %+v", csc)
	}
	if psc != nil && psc.FSGroup == nil {
		t.Errorf("no fsGroup: the non-root user cannot write the volume")
	}

	// Resources from the measured numbers (docs/benchmarks.md: 138 MiB RSS under load).
	req, lim := c.Resources.Requests, c.Resources.Limits
	if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
		t.Errorf("want cpu and memory requests and a memory limit: %+v", c.Resources)
	}
	if lim.Memory().Value() < 2*138<<20 {
		t.Errorf("memory limit %s leaves no headroom over the measured 138 MiB RSS", lim.Memory())
	}

	// Volumes: data per pod, rules as a directory, secrets as files.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
		if m.SubPath != "" {
			t.Errorf("volumeMount %s uses subPath: updates would never reach the pod", m.Name)
		}
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || mounts[sts.Spec.VolumeClaimTemplates[0].Name].MountPath != env["ARUBUG_DATA_DIR"] {
		t.Errorf("the volumeClaimTemplate must be mounted at ARUBUG_DATA_DIR %s", env["ARUBUG_DATA_DIR"])
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	var rulesVol string
	for name, m := range mounts {
		if m.MountPath == path.Dir(env["ARUBUG_RULES_FILE"]) {
			rulesVol = name
		}
	}
	rv := vols[rulesVol]
	if rv.ConfigMap == nil || cms[rv.ConfigMap.Name] == nil || cms[rv.ConfigMap.Name].Data[path.Base(env["ARUBUG_RULES_FILE"])] == "" {
		t.Fatalf("ARUBUG_RULES_FILE %s is not a key of a ConfigMap mounted as its directory", env["ARUBUG_RULES_FILE"])
	}
	rulesCM := cms[rv.ConfigMap.Name]
	if want, _ := os.ReadFile(filepath.Join(repo, "routing-rules/rules.yaml")); rulesCM.Data[path.Base(env["ARUBUG_RULES_FILE"])] != string(want) {
		t.Errorf("ConfigMap %s is not routing-rules/rules.yaml", rulesCM.Name)
	}
	if strings.Contains(strings.TrimPrefix(rulesCM.Name, "arubug-rules"), "-") {
		t.Errorf("ConfigMap %s carries a hash suffix: a rules change would roll the pods instead of reloading", rulesCM.Name)
	}
	var secretVol corev1.Volume
	var secretMount corev1.VolumeMount
	for name, m := range mounts {
		if vols[name].Secret != nil {
			secretVol, secretMount = vols[name], m
		}
	}
	var secretKeys []string
	for k, v := range env {
		known, _ := settings()
		if base, ok := strings.CutSuffix(k, "_FILE"); !ok || known[k] || !known[base] {
			continue
		}
		if secretVol.Secret == nil || path.Dir(v) != secretMount.MountPath {
			t.Errorf("%s=%s is not in the Secret's mount", k, v)
			continue
		}
		secretKeys = append(secretKeys, path.Base(v))
	}
	if secretVol.Secret != nil && (secretVol.Secret.DefaultMode == nil || *secretVol.Secret.DefaultMode&0o040 == 0) {
		t.Errorf("the Secret's files must be readable by the fsGroup (defaultMode 0440)")
	}
	var secret *corev1.Secret
	for _, s := range o.secrets {
		if secretVol.Secret != nil && s.Name == secretVol.Secret.SecretName {
			secret = s
		}
	}
	switch overlay {
	case "production":
		if secret != nil {
			t.Errorf("production must not ship the Secret (it is created outside git)")
		}
		// The example must still describe every key production reads; production syncs
		// with Zendesk, so the run fills the example's empty Zendesk values.
		secret = exampleSecret(t)
		for k, v := range secret.StringData {
			if v == "" {
				secret.StringData[k] = "placeholder-" + k
			}
		}
	default:
		if secret == nil {
			t.Fatalf("%s: no Secret %s", overlay, secretVol.Secret.SecretName)
		}
	}
	for _, k := range secretKeys {
		if _, ok := secret.StringData[k]; !ok {
			t.Errorf("Secret %s lacks key %s", secret.Name, k)
		}
	}

	// Services: one for traffic, one headless governing the StatefulSet.
	svcs := map[string]*corev1.Service{}
	for _, s := range o.services {
		svcs[s.Name] = s
		if !selects(s.Spec.Selector, pod.Labels) {
			t.Errorf("Service %s does not select the pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort != intstr.FromString("http") {
				t.Errorf("Service %s targets %s, want the named port http", s.Name, p.TargetPort.String())
			}
		}
	}
	if h := svcs[sts.Spec.ServiceName]; h == nil || h.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("serviceName %q is not a headless Service", sts.Spec.ServiceName)
	}
	ing := o.ingresses[0]
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			s := svcs[p.Backend.Service.Name]
			if s == nil || !slices.ContainsFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == p.Backend.Service.Port.Name }) {
				t.Errorf("Ingress backend %+v is not a Service port", p.Backend.Service)
			}
		}
	}
	if !selects(o.pdbs[0].Spec.Selector.MatchLabels, pod.Labels) {
		t.Errorf("PodDisruptionBudget does not select the pods")
	}
	hpa := o.hpas[0]
	if hpa.Spec.ScaleTargetRef.Kind != "StatefulSet" || hpa.Spec.ScaleTargetRef.Name != sts.Name ||
		len(hpa.Spec.Metrics) == 0 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA must scale the StatefulSet on CPU: %+v", hpa.Spec)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas > hpa.Spec.MaxReplicas {
		t.Errorf("HPA replicas %v..%d", hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
	}
	sm := o.monitors[0]
	var scraped []*corev1.Service
	for _, s := range o.services {
		if selects(sm.Spec.Selector.MatchLabels, s.Labels) {
			scraped = append(scraped, s)
		}
	}
	if len(scraped) != 1 {
		t.Errorf("the ServiceMonitor selects %d Services; one, or every pod is scraped twice", len(scraped))
	} else {
		for _, ep := range sm.Spec.Endpoints {
			if ep.Path != "/metrics" || !slices.ContainsFunc(scraped[0].Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == ep.Port }) {
				t.Errorf("ServiceMonitor endpoint %+v: want /metrics on a port of %s", ep, scraped[0].Name)
			}
		}
	}

	t.Run("run", func(t *testing.T) { runPod(t, sts, env, cms, secret) })
}

// exampleSecret is overlays/dev/secret.yaml, the documented shape of the Secret.
func exampleSecret(t *testing.T) *corev1.Secret {
	for _, s := range render(t, "dev").secrets {
		return s
	}
	t.Fatal("no example Secret in overlays/dev")
	return nil
}

// runPod starts the binary as the pod would: its env, its user, the Secret's files and the
// rules ConfigMap laid out as the kubelet lays it out, then updates the ConfigMap the way
// the kubelet does and expects Arubug to reload the rules without a restart.
func runPod(t *testing.T, sts *appsv1.StatefulSet, env map[string]string, cms map[string]*corev1.ConfigMap, secret *corev1.Secret) {
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	uid, gid := int(*pod.SecurityContext.RunAsUser), int(*pod.SecurityContext.FSGroup)
	// The image's WORKDIR (the data dir), as the container sets no workingDir.
	r := run{root: fakeRoot(t), args: c.Args, workdir: env["ARUBUG_DATA_DIR"], uid: uid, gid: gid, env: env}
	for _, m := range c.VolumeMounts {
		var v corev1.Volume
		for _, pv := range pod.Volumes {
			if pv.Name == m.Name {
				v = pv
			}
		}
		switch {
		case v.ConfigMap != nil:
			atomicWrite(t, r.containerPath(m.MountPath), cms[v.ConfigMap.Name].Data, "..2026_01_01_00_00_00.000000001")
		case v.Secret != nil:
			for k, val := range secret.StringData {
				writeFile(t, r.root, path.Join(m.MountPath, k), []byte(val), 0o440)
				if os.Geteuid() == 0 {
					_ = os.Chown(r.containerPath(path.Join(m.MountPath, k)), 0, gid)
				}
			}
		default: // the data volume and /tmp: writable by the fsGroup
			mkdirOwned(t, r.root, m.MountPath, 0, gid)
			_ = os.Chmod(r.containerPath(m.MountPath), 0o2775)
		}
	}
	before := listFiles(t, r.root)
	p := r.start(t)
	token := strings.Split(env["ARUBUG_PROJECT_TOKENS"], ",")[0]
	exerciseCollector(t, p, r, env["ARUBUG_DATA_DIR"], token)
	if code, _ := p.get(t, "/api/v1/teams", ""); code != http.StatusUnauthorized {
		t.Errorf("admin API without a token: %d, want 401", code)
	}
	if code, body := p.get(t, "/api/v1/teams", secret.StringData["admin-token"]); code == http.StatusUnauthorized {
		t.Errorf("admin API refuses the Secret's admin-token: %s", body)
	}

	// kubectl apply of a changed ConfigMap: the kubelet writes a new timestamped directory
	// and swaps the ..data symlink.
	var rulesMount string
	for _, m := range c.VolumeMounts {
		if m.MountPath == path.Dir(env["ARUBUG_RULES_FILE"]) {
			rulesMount = m.MountPath
		}
	}
	key := path.Base(env["ARUBUG_RULES_FILE"])
	var data map[string]string
	for _, cm := range cms {
		if v, ok := cm.Data[key]; ok && strings.Contains(v, "teams:") {
			data = map[string]string{key: v + "\n# changed by deploy-check\n"}
		}
	}
	atomicWrite(t, r.containerPath(rulesMount), data, "..2026_01_01_00_01_00.000000002")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if v, _ := p.metric(t, `arubug_rules_reloads_total{result="ok"}`); v >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rules were not reloaded within 10 s of the ConfigMap update")
		}
		time.Sleep(200 * time.Millisecond)
	}

	p.stop(t, time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second)

	// readOnlyRootFilesystem: nothing may have been written outside the writable mounts.
	writable := []string{}
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly {
			writable = append(writable, r.containerPath(m.MountPath)+string(filepath.Separator))
		}
	}
	for f := range listFiles(t, r.root) {
		if before[f] || strings.Contains(f, string(filepath.Separator)+"..") {
			continue
		}
		if !slices.ContainsFunc(writable, func(w string) bool { return strings.HasPrefix(f, w) }) {
			t.Errorf("arubug wrote %s, which is on the read-only root filesystem", f)
		}
	}
}

// atomicWrite lays out files as the kubelet's atomic writer does for a ConfigMap volume:
// dir/<ts>/<key>, dir/..data -> <ts>, dir/<key> -> ..data/<key>; an update writes a new
// <ts> directory and renames a new ..data symlink over the old one in one step.
func atomicWrite(t *testing.T, dir string, data map[string]string, ts string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, ts, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	if err := os.Symlink(ts, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for k := range data {
		link := filepath.Join(dir, k)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", k), link); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func listFiles(t *testing.T, root string) map[string]bool {
	t.Helper()
	files := map[string]bool{}
	_ = filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files[p] = true
		}
		return nil
	})
	return files
}
