package main

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func hash64(v []byte) uint64 {
	h := fnv.New64a()
	_, _ = h.Write(v)
	return h.Sum64()
}

// crashChild appends forever with cfg.c workers and prints "seq hash" for
// each append only after Append has returned (the record is fsynced). The
// parent kills it with SIGKILL.
func crashChild(cfg config) error {
	if len(cfg.stores) != 1 {
		return fmt.Errorf("child needs exactly one store")
	}
	s, err := cfg.stores[0].open(cfg.childDir)
	if err != nil {
		return err
	}
	payloads := genPayloads(cfg.size)
	acks := make(chan string, 65536)
	for w := range cfg.c {
		go func() {
			r := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				v := payloads[r.IntN(len(payloads))]
				seq, err := s.Append(v)
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(2)
				}
				acks <- strconv.FormatUint(seq, 10) + " " + strconv.FormatUint(hash64(v), 16) + "\n"
			}
		}()
	}
	var buf []byte
	for line := range acks {
		buf = append(buf[:0], line...)
	more:
		for len(buf) < 64<<10 {
			select {
			case l := <-acks:
				buf = append(buf, l...)
			default:
				break more
			}
		}
		if _, err := os.Stdout.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

type crashResult struct {
	acked, found, missing, mismatch int
	err                             string
}

func crashCheck(cfg config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("Crash check: child appends with -c %d -size %d, SIGKILL after %s (+0-25%%), reopen, verify every acknowledged record; %d runs per store\n\n",
		cfg.c, cfg.size, cfg.killAt, cfg.runs)
	fmt.Println("| store | runs passed | acked records per run | records found per run | missing | corrupt | errors |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, k := range cfg.stores {
		var results []crashResult
		for run := 1; run <= cfg.runs; run++ {
			r := crashOnce(cfg, self, k)
			fmt.Fprintf(os.Stderr, "  %s run %d: acked %d found %d missing %d mismatch %d %s\n", k.name, run, r.acked, r.found, r.missing, r.mismatch, r.err)
			results = append(results, r)
		}
		passed := 0
		var acked, found []string
		missing, mismatch := 0, 0
		var errs []string
		for _, r := range results {
			if r.err == "" && r.missing == 0 && r.mismatch == 0 && r.acked > 0 {
				passed++
			}
			acked = append(acked, strconv.Itoa(r.acked))
			found = append(found, strconv.Itoa(r.found))
			missing += r.missing
			mismatch += r.mismatch
			if r.err != "" {
				errs = append(errs, r.err)
			}
		}
		e := "none"
		if len(errs) > 0 {
			e = strings.Join(errs, "; ")
		}
		fmt.Printf("| %s | %d/%d | %s | %s | %d | %d | %s |\n", k.name, passed, len(results),
			strings.Join(acked, ", "), strings.Join(found, ", "), missing, mismatch, e)
	}
	return nil
}

func crashOnce(cfg config, self string, k storeKind) (res crashResult) {
	dir, err := os.MkdirTemp(cfg.dir, "spool-crash-"+k.name+"-")
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(self, "-child", "-stores", k.name, "-child-dir", dir,
		"-c", strconv.Itoa(cfg.c), "-size", strconv.Itoa(cfg.size))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		res.err = err.Error()
		return res
	}
	if err := cmd.Start(); err != nil {
		res.err = err.Error()
		return res
	}
	acked := map[uint64]uint64{}
	readDone := make(chan error, 1)
	go func() {
		br := bufio.NewReaderSize(out, 1<<20)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				readDone <- nil // EOF; a final line without '\n' was cut by the kill: ignore it
				return
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				readDone <- fmt.Errorf("bad line %q", line)
				return
			}
			seq, err1 := strconv.ParseUint(f[0], 10, 64)
			h, err2 := strconv.ParseUint(f[1], 16, 64)
			if err1 != nil || err2 != nil {
				readDone <- fmt.Errorf("bad line %q", line)
				return
			}
			if _, dup := acked[seq]; dup {
				readDone <- fmt.Errorf("sequence %d acknowledged twice", seq)
				return
			}
			acked[seq] = h
		}
	}()
	jitter := time.Duration(rand.Int64N(int64(cfg.killAt)/4 + 1))
	time.Sleep(cfg.killAt + jitter)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if err := <-readDone; err != nil {
		res.err = err.Error()
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		res.err = strings.TrimSpace("child was not killed: " + cmd.ProcessState.String() + " " + stderr.String())
	}
	res.acked = len(acked)

	s, err := k.open(dir)
	if err != nil {
		res.err = "reopen: " + err.Error()
		return res
	}
	defer s.Close()
	found := map[uint64]uint64{}
	if err := s.Scan(func(seq uint64, v []byte) error {
		found[seq] = hash64(v)
		return nil
	}); err != nil {
		res.err = "scan: " + err.Error()
	}
	res.found = len(found)
	for seq, h := range acked {
		got, ok := found[seq]
		switch {
		case !ok:
			res.missing++
		case got != h:
			res.mismatch++
		}
	}
	// The store must also still take appends after the crash.
	if _, err := s.Append([]byte(`{"after":"crash"}`)); err != nil && res.err == "" {
		res.err = "append after reopen: " + err.Error()
	}
	return res
}
