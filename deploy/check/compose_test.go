package check

import (
	"bufio"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// Only the parts of the Compose specification that compose.yaml uses; decoding is strict,
// so a misspelt key fails here rather than being ignored by `docker compose`.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
	Secrets  map[string]struct {
		Environment string `json:"environment,omitempty"`
		File        string `json:"file,omitempty"`
	} `json:"secrets"`
	Volumes map[string]*struct{} `json:"volumes"`
}

type composeService struct {
	Build *struct {
		Context    string            `json:"context"`
		Dockerfile string            `json:"dockerfile"`
		Target     string            `json:"target,omitempty"`
		Args       map[string]string `json:"args,omitempty"`
	} `json:"build,omitempty"`
	Image     string   `json:"image"`
	Profiles  []string `json:"profiles,omitempty"`
	Restart   string   `json:"restart,omitempty"`
	Command   []string `json:"command,omitempty"`
	DependsOn any      `json:"depends_on,omitempty"`
	Ports     []string `json:"ports,omitempty"`
	// Environment is a map in compose.yaml (not the list form).
	Environment map[string]string `json:"environment,omitempty"`
	Secrets     []string          `json:"secrets,omitempty"`
	Volumes     []string          `json:"volumes,omitempty"`
	Ulimits     map[string]struct {
		Soft int `json:"soft"`
		Hard int `json:"hard"`
	} `json:"ulimits,omitempty"`
	Healthcheck *struct {
		Test     []string `json:"test"`
		Interval string   `json:"interval"`
		Timeout  string   `json:"timeout"`
		Retries  int      `json:"retries"`
	} `json:"healthcheck,omitempty"`
	StopGracePeriod string `json:"stop_grace_period,omitempty"`
}

var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}`)

// readEnvFile reads KEY=VALUE lines, as Compose reads .env.
func readEnvFile(t *testing.T, p string) map[string]string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: %q is not KEY=VALUE", p, line)
			continue
		}
		env[k] = v
	}
	return env
}

func TestCompose(t *testing.T) {
	dir := filepath.Join(repo, "deploy/compose")
	raw, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dotenv := readEnvFile(t, filepath.Join(dir, ".env.example"))
	// Interpolate as `docker compose` does with .env = .env.example; every variable used
	// must be documented there.
	text := interpolation.ReplaceAllStringFunc(string(raw), func(m string) string {
		sub := interpolation.FindStringSubmatch(m)
		v, ok := dotenv[sub[1]]
		if !ok {
			t.Errorf("compose.yaml uses ${%s}, which .env.example does not set", sub[1])
		}
		if v == "" && strings.HasSuffix(sub[2], "-") {
			v = sub[3]
		}
		if v == "" && strings.HasSuffix(sub[2], "?") {
			t.Errorf("${%s} is required but empty in .env.example", sub[1])
		}
		return v
	})
	var c composeFile
	if err := yaml.UnmarshalStrict([]byte(text), &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for name, s := range c.Secrets {
		if s.Environment != "" {
			if _, ok := dotenv[s.Environment]; !ok {
				t.Errorf("secret %s comes from $%s, which .env.example does not set", name, s.Environment)
			}
		}
	}

	a, ok := c.Services["arubug"]
	if !ok || a.Build == nil {
		t.Fatal("no service arubug built from the Dockerfile")
	}
	if filepath.Clean(filepath.Join(dir, a.Build.Context)) != repo || a.Build.Dockerfile != "deploy/docker/Dockerfile" {
		t.Errorf("arubug builds %s with %s; want the repository root and deploy/docker/Dockerfile", a.Build.Context, a.Build.Dockerfile)
	}
	ch, ok := c.Services["clickhouse"]
	if !ok || !strings.HasPrefix(ch.Image, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse service image %q, want the official clickhouse/clickhouse-server", ch.Image)
	}
	g, ok := c.Services["grafana"]
	if !ok || !slices.Equal(g.Profiles, []string{"grafana"}) || !strings.HasPrefix(g.Image, "grafana/grafana") {
		t.Errorf("grafana service: profiles %v image %q", g.Profiles, g.Image)
	}
	if g.Environment["GF_PLUGINS_PREINSTALL"] != "grafana-clickhouse-datasource" {
		t.Errorf("grafana does not install grafana-clickhouse-datasource")
	}

	for name, s := range c.Services {
		for _, sec := range s.Secrets {
			if _, ok := c.Secrets[sec]; !ok {
				t.Errorf("%s uses undeclared secret %s", name, sec)
			}
		}
		for k, v := range s.Environment {
			if p, ok := strings.CutPrefix(v, "/run/secrets/"); ok && !slices.Contains(s.Secrets, p) {
				t.Errorf("%s: %s=%s but the service does not mount that secret", name, k, v)
			}
		}
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join(dir, src)); err != nil {
					t.Errorf("%s mounts %s: %v", name, src, err)
				}
			} else if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s uses undeclared volume %s", name, src)
			}
		}
	}

	// The DSN names the clickhouse service on its native port.
	u, err := url.Parse(a.Environment["ARUBUG_CLICKHOUSE_DSN"])
	if err != nil || u.Scheme != "clickhouse" || u.Port() != "9000" || c.Services[u.Hostname()].Image == "" {
		t.Errorf("ARUBUG_CLICKHOUSE_DSN %q does not point at a compose service on port 9000", a.Environment["ARUBUG_CLICKHOUSE_DSN"])
	}

	// Grafana's provisioning: the ClickHouse data source and the dashboards folder.
	checkGrafanaProvisioning(t, dir, g)

	// The arubug container: the image's ENV, USER and paths, then the service's.
	d := parseDockerfile(t)
	stage := d.stages[len(d.stages)-1]
	if a.Build.Target != "" {
		stage, _ = d.stage(a.Build.Target)
	}
	img := d.image(t, stage)
	env := map[string]string{}
	for k, v := range img.env {
		env[k] = v
	}
	for k, v := range a.Environment {
		env[k] = v
	}
	checkEnvNames(t, "compose.yaml arubug", a.Environment)
	if !slices.ContainsFunc(a.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+env["ARUBUG_DATA_DIR"]) }) {
		t.Errorf("no volume on the data dir %s: %v", env["ARUBUG_DATA_DIR"], a.Volumes)
	}
	_, port, _ := strings.Cut(env["ARUBUG_ADDR"], ":")
	if !slices.ContainsFunc(a.Ports, func(p string) bool { return strings.HasSuffix(p, ":"+port) }) {
		t.Errorf("ports %v do not publish the container's %s", a.Ports, port)
	}
	if grace, err := time.ParseDuration(a.StopGracePeriod); err != nil || grace <= 30*time.Second {
		t.Errorf("stop_grace_period %q must exceed the 30 s shutdown_timeout", a.StopGracePeriod)
	}

	uid, gid := parseUser(t, img.user)
	cmd := img.cmd
	if len(a.Command) > 0 {
		cmd = a.Command
	}
	r := run{root: fakeRoot(t), args: cmd, workdir: img.workdir, uid: uid, gid: gid, env: env}
	rulesSrc, _ := os.ReadFile(filepath.Join(repo, "routing-rules/rules.yaml"))
	writeFile(t, r.root, env["ARUBUG_RULES_FILE"], rulesSrc, 0o644)
	mkdirOwned(t, r.root, env["ARUBUG_DATA_DIR"], uid, gid)
	for _, name := range a.Secrets {
		// Compose writes a secret from the environment as a file readable by the user.
		writeFile(t, r.root, "/run/secrets/"+name, []byte(dotenv[c.Secrets[name].Environment]), 0o444)
	}
	p := r.start(t)
	token := strings.Split(env["ARUBUG_PROJECT_TOKENS"], ",")[0]
	exerciseCollector(t, p, r, env["ARUBUG_DATA_DIR"], token)
	// The admin token arrived through its secret file.
	if code, _ := p.get(t, "/api/v1/teams", ""); code != http.StatusUnauthorized {
		t.Errorf("admin API without a token: %d, want 401", code)
	}
	if code, body := p.get(t, "/api/v1/teams", dotenv["ARUBUG_ADMIN_TOKEN"]); code == http.StatusUnauthorized {
		t.Errorf("admin API refuses the compose admin token: %s", body)
	}
	p.stop(t, 40*time.Second)
}

func checkGrafanaProvisioning(t *testing.T, dir string, g composeService) {
	t.Helper()
	var ds struct {
		APIVersion  int `json:"apiVersion"`
		Datasources []struct {
			Name      string         `json:"name"`
			UID       string         `json:"uid"`
			Type      string         `json:"type"`
			IsDefault bool           `json:"isDefault"`
			Editable  bool           `json:"editable"`
			JSONData  map[string]any `json:"jsonData"`
			Secure    map[string]any `json:"secureJsonData"`
		} `json:"datasources"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "grafana/provisioning/datasources/clickhouse.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &ds); err != nil {
		t.Fatalf("datasource provisioning: %v", err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "grafana-clickhouse-datasource" ||
		ds.Datasources[0].JSONData["host"] != "clickhouse" || ds.Datasources[0].JSONData["protocol"] != "native" {
		t.Errorf("datasource provisioning: %+v", ds)
	}
	if pw, _ := ds.Datasources[0].Secure["password"].(string); strings.TrimPrefix(pw, "$") == pw || g.Environment[strings.Trim(strings.TrimPrefix(pw, "$"), "{}")] == "" {
		t.Errorf("datasource password %q is not an environment variable of the grafana service", pw)
	}

	var dash struct {
		APIVersion int `json:"apiVersion"`
		Providers  []struct {
			Name                  string `json:"name"`
			Folder                string `json:"folder"`
			Type                  string `json:"type"`
			DisableDeletion       bool   `json:"disableDeletion"`
			AllowUIUpdates        bool   `json:"allowUiUpdates"`
			UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
			Options               struct {
				Path                      string `json:"path"`
				FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
			} `json:"options"`
		} `json:"providers"`
	}
	b, err = os.ReadFile(filepath.Join(dir, "grafana/provisioning/dashboards/arubug.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, &dash); err != nil {
		t.Fatalf("dashboard provisioning: %v", err)
	}
	// The provider's path is where deploy/grafana/dashboards is mounted.
	var mounted string
	for _, v := range g.Volumes {
		src, dst, _ := strings.Cut(v, ":")
		dst, _, _ = strings.Cut(dst, ":")
		if filepath.Clean(filepath.Join(dir, src)) == filepath.Join(repo, "deploy/grafana/dashboards") {
			mounted = dst
		}
	}
	if len(dash.Providers) != 1 || mounted == "" || path.Clean(dash.Providers[0].Options.Path) != mounted {
		t.Errorf("dashboards provider path %+v, deploy/grafana/dashboards mounted at %q", dash.Providers, mounted)
	}
	// Every dashboard shipped must be JSON.
	files, _ := filepath.Glob(filepath.Join(repo, "deploy/grafana/dashboards/*.json"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var v map[string]any
		if err := yaml.Unmarshal(b, &v); err != nil || v["panels"] == nil {
			t.Errorf("%s: not a dashboard JSON (%v)", f, err)
		}
	}
}
