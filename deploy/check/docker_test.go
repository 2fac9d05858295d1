package check

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// image is what a final stage of the Dockerfile gives a container.
type image struct {
	base        string // the first non-stage base, e.g. gcr.io/distroless/static-debian12:nonroot
	env         map[string]string
	user        string
	workdir     string
	volumes     []string
	expose      []string
	entrypoint  []string
	cmd         []string
	healthcheck []string
	copies      map[string]string // destination → source ("stage:path" or context path)
}

type dockerfile struct {
	stages []instructions.Stage
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join(repo, "deploy/docker/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: %s", w.Short)
	}
	var lint []string
	lnt := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		lint = append(lint, linter.LintFormatShort(rule, msg, line))
	}})
	stages, _, err := instructions.Parse(res.AST, lnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lint {
		t.Errorf("Dockerfile lint: %s", l)
	}
	return dockerfile{stages: stages}
}

func (d dockerfile) stage(name string) (instructions.Stage, bool) {
	for _, s := range d.stages {
		if s.Name == name {
			return s, true
		}
	}
	return instructions.Stage{}, false
}

// image resolves a stage through the stages it is built FROM.
func (d dockerfile) image(t *testing.T, s instructions.Stage) image {
	t.Helper()
	var chain []instructions.Stage
	for {
		chain = append([]instructions.Stage{s}, chain...)
		parent, ok := d.stage(s.BaseName)
		if !ok {
			break
		}
		s = parent
	}
	img := image{base: chain[0].BaseName, env: map[string]string{}, workdir: "/", copies: map[string]string{}}
	for _, st := range chain {
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					img.env[kv.Key] = kv.Value
				}
			case *instructions.UserCommand:
				img.user = c.User
			case *instructions.WorkdirCommand:
				img.workdir = path.Join(img.workdir, c.Path)
			case *instructions.VolumeCommand:
				img.volumes = append(img.volumes, c.Volumes...)
			case *instructions.ExposeCommand:
				img.expose = append(img.expose, c.Ports...)
			case *instructions.EntrypointCommand:
				if c.PrependShell {
					t.Errorf("ENTRYPOINT in shell form: distroless has no shell")
				}
				img.entrypoint = c.CmdLine
			case *instructions.CmdCommand:
				if c.PrependShell {
					t.Errorf("CMD in shell form: distroless has no shell")
				}
				img.cmd = c.CmdLine
			case *instructions.HealthCheckCommand:
				img.healthcheck = c.Health.Test
			case *instructions.CopyCommand:
				for _, src := range c.SourcePaths {
					from := src
					if c.From != "" {
						from = c.From + ":" + src
					}
					dst := c.DestPath
					if strings.HasSuffix(dst, "/") {
						dst += path.Base(src)
					}
					img.copies[dst] = from
				}
			}
		}
	}
	return img
}

func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	if len(d.stages) == 0 {
		t.Fatal("no stages")
	}

	build, ok := d.stage("build")
	if !ok || !strings.HasPrefix(build.BaseName, "golang:") {
		t.Fatalf("want a stage `build` FROM golang:…, got %q", build.BaseName)
	}
	var goBuild string
	for _, c := range build.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && strings.Contains(strings.Join(r.CmdLine, " "), "go build") {
			goBuild = strings.Join(r.CmdLine, " ")
		}
	}
	makefile, _ := os.ReadFile(filepath.Join(repo, "Makefile"))
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/arubug"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the go build RUN lacks %q: %s", want, goBuild)
		}
	}
	if !strings.Contains(string(makefile), "-X main.version=") {
		t.Errorf("the Makefile no longer stamps main.version; align the Dockerfile with it")
	}

	// Every file the build stage COPYs from the context must survive .dockerignore.
	context, err := dockerContext()
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range d.stages {
		for _, c := range st.Commands {
			cp, ok := c.(*instructions.CopyCommand)
			if !ok || cp.From != "" {
				continue
			}
			for _, src := range cp.SourcePaths {
				pat := strings.TrimSuffix(src, "/")
				found := false
				for _, f := range context {
					if m, _ := path.Match(pat, f); m || strings.HasPrefix(f, pat+"/") || f == pat {
						found = true
						break
					}
				}
				if !found {
					t.Errorf("COPY %s: nothing in the build context matches (check .dockerignore)", src)
				}
			}
		}
	}
	if slices.ContainsFunc(context, func(f string) bool { return strings.Contains(f, "node_modules") || strings.HasSuffix(f, "_test.go") }) {
		t.Errorf(".dockerignore lets tests or node_modules into the build context")
	}

	for _, target := range []string{"minimal", d.stages[len(d.stages)-1].Name} {
		t.Run(target, func(t *testing.T) {
			s, ok := d.stage(target)
			if !ok {
				t.Fatalf("no stage %q", target)
			}
			img := d.image(t, s)
			checkImage(t, target, img)
			if target != "minimal" {
				checkHealthcheck(t, img)
			}
		})
	}
}

func checkImage(t *testing.T, target string, img image) {
	if !strings.HasPrefix(img.base, "gcr.io/distroless/static") {
		t.Errorf("%s: base %s, want distroless/static", target, img.base)
	}
	uid, gid := parseUser(t, img.user)
	if uid == 0 {
		t.Errorf("%s: USER %q runs as root", target, img.user)
	}
	checkEnvNames(t, "Dockerfile ENV", img.env)
	dataDir := img.env["ARUBUG_DATA_DIR"]
	if !slices.Contains(img.volumes, dataDir) || dataDir == "" {
		t.Errorf("%s: VOLUME %v does not hold ARUBUG_DATA_DIR %q", target, img.volumes, dataDir)
	}
	if got := "/" + strings.TrimPrefix(img.copies[dataDir], "build:/out/"); got != dataDir {
		t.Errorf("%s: the data dir %s is not created in the image (for the volume's ownership): %q", target, dataDir, img.copies[dataDir])
	}
	_, port, _ := strings.Cut(img.env["ARUBUG_ADDR"], ":")
	if !slices.Contains(img.expose, port) && !slices.Contains(img.expose, port+"/tcp") {
		t.Errorf("%s: EXPOSE %v, but ARUBUG_ADDR listens on %q", target, img.expose, port)
	}
	if len(img.entrypoint) != 1 || img.copies[img.entrypoint[0]] == "" {
		t.Errorf("%s: ENTRYPOINT %v is not the copied binary (%v)", target, img.entrypoint, img.copies)
	}
	if !slices.Equal(img.cmd, []string{"serve"}) {
		t.Errorf("%s: CMD %v, want [serve]", target, img.cmd)
	}
	rules := img.env["ARUBUG_RULES_FILE"]
	if !strings.HasSuffix(img.copies[rules], "rules.yaml") {
		t.Errorf("%s: ARUBUG_RULES_FILE %s is not a copied rules file", target, rules)
	}

	// Run the binary as the image would: its ENV, USER, WORKDIR, CMD and files.
	r := run{root: fakeRoot(t), args: img.cmd, workdir: img.workdir, uid: uid, gid: gid, env: map[string]string{}}
	for k, v := range img.env {
		r.env[k] = v
	}
	rulesSrc, _ := os.ReadFile(filepath.Join(repo, "routing-rules/rules.yaml"))
	writeFile(t, r.root, rules, rulesSrc, 0o644)
	mkdirOwned(t, r.root, dataDir, uid, gid)
	// What `docker run` must add (README of deploy/compose): a ClickHouse DSN and a token.
	r.env["ARUBUG_CLICKHOUSE_DSN"] = "clickhouse://127.0.0.1:" + freePort(t) + "/arubug"
	r.env["ARUBUG_PROJECT_TOKENS"] = "phc_deploy_check"
	p := r.start(t)
	exerciseCollector(t, p, r, dataDir, "phc_deploy_check")
	// Default shutdown_timeout is 30 s; compose and Kubernetes give 45 s.
	p.stop(t, 40*time.Second)
}

func checkHealthcheck(t *testing.T, img image) {
	if len(img.healthcheck) < 2 || img.healthcheck[0] != "CMD" {
		t.Fatalf("HEALTHCHECK %v: want the exec form (no shell in the image)", img.healthcheck)
	}
	if img.copies[img.healthcheck[1]] == "" {
		t.Errorf("HEALTHCHECK runs %s, which the image does not contain", img.healthcheck[1])
	}
	var u *url.URL
	for _, a := range img.healthcheck {
		if strings.HasPrefix(a, "http://") {
			u, _ = url.Parse(a)
		}
	}
	_, port, _ := strings.Cut(img.env["ARUBUG_ADDR"], ":")
	if u == nil || u.Path != "/_health" || u.Port() != port {
		t.Errorf("HEALTHCHECK %v: want http://127.0.0.1:%s/_health", img.healthcheck, port)
	}
}

func parseUser(t *testing.T, user string) (int, int) {
	t.Helper()
	u, g, _ := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil {
		t.Fatalf("USER %q: want numeric uid:gid (Kubernetes runAsNonRoot checks a numeric user)", user)
	}
	return uid, gid
}
