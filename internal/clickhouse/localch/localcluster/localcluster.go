// Package localcluster runs deploy/clickhouse/local-cluster.sh: ZooKeeper
// and several clickhouse-server processes forming a real ClickHouse cluster
// on loopback ports, for tests of cluster mode. The script does the work (so
// that what the tests prove is what an operator can run by hand); this
// package starts it, reads the addresses it prints, and sends it the
// commands that kill, stop and start nodes.
//
// The script and everything it starts die with the calling process, even
// when that process is killed: the script runs with a parent-death signal,
// and starts its children with one.
package localcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ScriptPath is the script's path relative to the module root.
const ScriptPath = "deploy/clickhouse/local-cluster.sh"

// EnvScript overrides where the script is found.
const EnvScript = "ARUBUG_LOCAL_CLUSTER_SCRIPT"

// Options configures Start. Dir is required.
type Options struct {
	// Dir holds every node's data, configuration and logs.
	Dir string
	// Layout lists the replicas of each shard, e.g. "2" (one shard of two
	// replicas, the default) or "2,1".
	Layout string
	// Cluster is the cluster's name in remote_servers. Default arubug_local.
	Cluster string
	// Script is the path of local-cluster.sh. Default: $ARUBUG_LOCAL_CLUSTER_SCRIPT,
	// else found by walking up from the working directory to the module root.
	Script string
	// StartTimeout bounds Start and each node's start. Default 2 minutes.
	StartTimeout time.Duration
}

// Node is one clickhouse-server of the cluster.
type Node struct {
	Name     string // s<shard>r<replica>
	TCPAddr  string // native protocol, host:port
	HTTPAddr string
	Shard    int
	Replica  int
	LogDir   string
}

// Cluster is a running local cluster. Its methods are safe for concurrent
// use; commands are sent one at a time.
type Cluster struct {
	Name      string
	ZooKeeper string // host:port
	Nodes     []Node

	dir     string
	timeout time.Duration
	stderr  string // path of the script's stderr

	mu    sync.Mutex // serialises commands
	stdin io.WriteCloser
	lines chan string // stdout lines after "ready"
	done  chan struct{}
	pid   int
	err   error // the script's exit status, once done is closed
}

// ErrMissing is returned (wrapped, with what to install) when ZooKeeper or
// ClickHouse is not installed.
var ErrMissing = errors.New("localcluster: a required program is not installed")

// Start runs the script and returns once every node answers.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.Dir == "" {
		return nil, errors.New("localcluster: Options.Dir is required")
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	script := o.Script
	if script == "" {
		script = os.Getenv(EnvScript)
	}
	if script == "" {
		var err error
		if script, err = findScript(); err != nil {
			return nil, err
		}
	}
	args := []string{script}
	if o.Layout != "" {
		args = append(args, "--layout", o.Layout)
	}
	if o.Cluster != "" {
		args = append(args, "--cluster", o.Cluster)
	}
	args = append(args, o.Dir)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	c := &Cluster{dir: o.Dir, timeout: o.StartTimeout, stderr: filepath.Join(o.Dir, "local-cluster.stderr"),
		lines: make(chan string, 64), done: make(chan struct{})}
	errf, err := os.Create(c.stderr)
	if err != nil {
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	cmd := exec.Command("bash", args...)
	cmd.Stderr = errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		errf.Close()
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		errf.Close()
		return nil, fmt.Errorf("localcluster: %w", err)
	}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits, so
		// that thread must live as long as the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.pid = cmd.Process.Pid
		started <- nil
		c.err = cmd.Wait()
		errf.Close()
		close(c.done)
	}()
	if err := <-started; err != nil {
		errf.Close()
		return nil, fmt.Errorf("localcluster: start %s: %w", script, err)
	}

	header := make(chan error, 1)
	go c.read(stdout, header)
	timer := time.NewTimer(o.StartTimeout)
	defer timer.Stop()
	select {
	case err = <-header:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("not ready within %s", o.StartTimeout)
	}
	if err != nil {
		c.kill()
		return nil, c.failure(err)
	}
	return c, nil
}

// read parses the script's header into c, reports on header, then passes
// the answers to commands on to c.lines.
func (c *Cluster) read(r io.Reader, header chan<- error) {
	sc := bufio.NewScanner(r)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		if ready {
			c.lines <- line
			continue
		}
		key, rest, _ := strings.Cut(line, " ")
		switch key {
		case "cluster":
			c.Name = rest
		case "zookeeper":
			c.ZooKeeper = rest
		case "node":
			n, err := parseNode(rest)
			if err != nil {
				header <- err
				return
			}
			c.Nodes = append(c.Nodes, n)
		case "ready":
			ready = true
			header <- nil
		}
	}
	if !ready {
		<-c.done
		header <- fmt.Errorf("exited before it was ready (%v)", c.err)
	}
	close(c.lines)
}

// parseNode reads "s1r1 127.0.0.1:9000 http=127.0.0.1:8123 shard=1 replica=1 log=DIR".
func parseNode(s string) (Node, error) {
	f := strings.Fields(s)
	if len(f) < 2 {
		return Node{}, fmt.Errorf("bad node line %q", s)
	}
	n := Node{Name: f[0], TCPAddr: f[1]}
	for _, kv := range f[2:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "http":
			n.HTTPAddr = v
		case "shard":
			n.Shard, _ = strconv.Atoi(v)
		case "replica":
			n.Replica, _ = strconv.Atoi(v)
		case "log":
			n.LogDir = v
		}
	}
	return n, nil
}

// failure adds the script's last words to err, and says what to install
// when that is the cause.
func (c *Cluster) failure(err error) error {
	b, _ := os.ReadFile(c.stderr)
	tail := strings.TrimSpace(string(b))
	if len(tail) > 4000 {
		tail = "…" + tail[len(tail)-4000:]
	}
	if strings.Contains(tail, "is not installed") {
		return fmt.Errorf("%w: %s", ErrMissing, tail)
	}
	return fmt.Errorf("localcluster: %w; script stderr:\n%s", err, tail)
}

// DSN returns a DSN naming every node, in the given order of node names (all
// nodes in layout order when none is given): clickhouse-go connects to the
// first that answers.
func (c *Cluster) DSN(database string, order ...string) string {
	if len(order) == 0 {
		for _, n := range c.Nodes {
			order = append(order, n.Name)
		}
	}
	var hosts []string
	for _, name := range order {
		if n, ok := c.Node(name); ok {
			hosts = append(hosts, n.TCPAddr)
		}
	}
	return "clickhouse://" + strings.Join(hosts, ",") + "/" + url.PathEscape(database)
}

// Node returns the node named name.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Kill kills a node's server with SIGKILL, as in a crash.
func (c *Cluster) Kill(node string) error { return c.command("kill " + node) }

// StopNode stops a node's server cleanly.
func (c *Cluster) StopNode(node string) error { return c.command("stop " + node) }

// StartNode starts a node's server again, on its ports and data, and waits
// until it answers.
func (c *Cluster) StartNode(node string) error { return c.command("start " + node) }

func (c *Cluster) command(cmd string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		return fmt.Errorf("localcluster: %s: %w", cmd, err)
	}
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	select {
	case line, ok := <-c.lines:
		if !ok {
			return c.failure(fmt.Errorf("%s: the script exited (%v)", cmd, c.err))
		}
		if msg, isErr := strings.CutPrefix(line, "error "); isErr {
			return fmt.Errorf("localcluster: %s: %s", cmd, msg)
		}
		return nil
	case <-timer.C:
		return fmt.Errorf("localcluster: %s: no answer within %s", cmd, c.timeout)
	}
}

// Close stops every server and ZooKeeper and waits for the script to exit;
// after a minute, or if ctx ends first, it kills them all.
func (c *Cluster) Close(ctx context.Context) error {
	c.mu.Lock()
	_ = c.stdin.Close() // end of input: the script stops everything
	c.mu.Unlock()
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case <-c.done:
		if c.err != nil {
			return c.failure(fmt.Errorf("exit: %w", c.err))
		}
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	c.kill()
	return errors.New("localcluster: the cluster did not stop in time and was killed")
}

// kill kills the script's process group; the servers, started with a
// parent-death signal, die with the script.
func (c *Cluster) kill() {
	_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
}

// findScript walks up from the working directory to the directory holding
// go.mod and returns its ScriptPath.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, ScriptPath)
			if _, err := os.Stat(p); err != nil {
				return "", fmt.Errorf("localcluster: %w", err)
			}
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("localcluster: no go.mod above the working directory; set %s", EnvScript)
		}
		dir = parent
	}
}
