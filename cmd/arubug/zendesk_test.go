package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/arubug/arubug/internal/zendesk/zendesktest"
)

const zdTestRules = `teams:
  - name: billing
    zendesk_group: "Billing"
  - name: platform
    zendesk_group: "Platform"
fallback_team: platform
`

func zdWriteRules(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(zdTestRules), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestZendeskSetupCommand(t *testing.T) {
	sim := zendesktest.Start(t, zendesktest.Options{})
	sim.AddGroup("Billing") // "Platform" is missing at first
	rules := zdWriteRules(t)
	secretFile := filepath.Join(t.TempDir(), "zendesk-webhook-secret")
	env := []string{
		"ARUBUG_ZENDESK_URL=" + sim.URL(),
		"ARUBUG_ZENDESK_EMAIL=" + zendesktest.DefaultEmail,
		"ARUBUG_ZENDESK_API_TOKEN=" + zendesktest.DefaultAPIToken,
		"ARUBUG_RULES_FILE=" + rules,
	}
	args := []string{"zendesk", "setup", "--webhook-url", "https://arubug.example.com/webhooks/zendesk", "--secret-file=" + secretFile}

	code, out := runBinary(t, env, args...)
	if code != 1 || !strings.Contains(out, `"Platform"`) || !strings.Contains(out, "do not exist") {
		t.Fatalf("missing group: exit %d\n%s", code, out)
	}
	for _, want := range []string{"webhook", "Arubug: comment added", "created", secretFile} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	st, err := os.Stat(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret file mode %v, want 0600", st.Mode().Perm())
	}
	b, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(b))
	if len(secret) < 16 {
		t.Fatalf("secret %d bytes", len(secret))
	}
	if strings.Contains(out, secret) {
		t.Errorf("the secret was printed:\n%s", out)
	}
	hooks := sim.Webhooks()
	if len(hooks) != 1 || len(sim.Triggers()) != 3 {
		t.Fatalf("%d webhooks, %d triggers", len(hooks), len(sim.Triggers()))
	}
	// The file holds the webhook's signing secret.
	req, _ := http.NewRequest("GET", sim.URL()+"/api/v2/webhooks/"+hooks[0].ID+"/signing_secret", nil)
	req.SetBasicAuth(zendesktest.DefaultEmail+"/token", zendesktest.DefaultAPIToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	sb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(sb), `"secret":"`+secret+`"`) {
		t.Errorf("the file's secret is not the webhook's: %s", sb)
	}

	// With the group created, a second run exits 0 and changes nothing.
	sim.AddGroup("Platform")
	if err := os.Chmod(secretFile, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = runBinary(t, env, args...)
	if code != 0 || !strings.Contains(out, "nothing to change") || strings.Count(out, "  unchanged") != 4 {
		t.Fatalf("second run: exit %d\n%s", code, out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the secret was printed:\n%s", out)
	}
	if st, _ := os.Stat(secretFile); st.Mode().Perm() != 0o600 {
		t.Errorf("rewritten secret file mode %v", st.Mode().Perm())
	}
	if b2, _ := os.ReadFile(secretFile); string(b2) != string(b) {
		t.Error("the secret changed")
	}

	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no webhook url", env, []string{"zendesk", "setup"}, "--webhook-url is required"},
		{"no account", []string{"ARUBUG_RULES_FILE=" + rules}, args, "--zendesk-url"},
		{"wrong token", append(append([]string{}, env...), "ARUBUG_ZENDESK_API_TOKEN=wrong-token-hunter2"), args, "401"},
		{"unknown subcommand", env, []string{"zendesk", "frob"}, `unknown zendesk subcommand "frob"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runBinary(t, tt.env, tt.args...)
			if code != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 1 and %q:\n%s", code, tt.want, out)
			}
			if strings.Contains(out, "hunter2") || strings.Contains(out, secret) {
				t.Errorf("a secret was printed:\n%s", out)
			}
		})
	}
}

func TestZendeskSimulateCommand(t *testing.T) {
	cmd := exec.Command(binary(t), "zendesk", "simulate", "--addr", "127.0.0.1:0", "--rules-file", zdWriteRules(t), "--requests-per-minute", "100")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		done <- cmd.Wait()
	}()
	var base string
	deadline := time.After(20 * time.Second)
	for base == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("simulate exited early")
			}
			if u, found := strings.CutPrefix(l, "Zendesk simulator listening on "); found {
				base = u
			}
		case <-deadline:
			t.Fatal("no listening line")
		}
	}

	resp, err := http.Get(base + "/_sim/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/_sim/: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/api/v2/groups.json", nil)
	req.SetBasicAuth(zendesktest.DefaultEmail+"/token", zendesktest.DefaultAPIToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"Billing"`) || !strings.Contains(string(body), `"Platform"`) {
		t.Errorf("groups: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Rate-Limit") != "100" {
		t.Errorf("X-Rate-Limit %q", resp.Header.Get("X-Rate-Limit"))
	}

	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines {
		}
	}()
	select {
	case err := <-done:
		exited = true
		if err != nil {
			t.Errorf("exit after SIGINT: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("simulate did not stop on SIGINT")
	}
}
