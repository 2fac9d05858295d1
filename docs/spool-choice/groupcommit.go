package main

import (
	"sync"
	"sync/atomic"
)

// groupCommit is the pattern of internal/spool, copied and made generic: a
// single committer goroutine takes every queued append and hands them to
// commit in one call (one transaction, one fsync), then signals each caller.
// Whatever arrives while one commit runs goes into the next one.
type groupCommit struct {
	reqs     chan *gcReq
	done     chan struct{}
	wg       sync.WaitGroup
	commit   func(batch []*gcReq) error // must set r.seq for each request
	maxBytes int64

	commits atomic.Int64 // number of commit calls (fsync groups)
	records atomic.Int64 // records committed
}

type gcReq struct {
	value []byte
	seq   uint64
	done  chan error
}

func newGroupCommit(commit func([]*gcReq) error) *groupCommit {
	g := &groupCommit{
		reqs:     make(chan *gcReq, 4096), // as internal/spool
		done:     make(chan struct{}),
		commit:   commit,
		maxBytes: 32 << 20, // internal/spool's default MaxCommitBytes
	}
	g.wg.Add(1)
	go g.loop()
	return g
}

// Append queues v and returns once it is durable, with its sequence number.
func (g *groupCommit) Append(v []byte) (uint64, error) {
	r := &gcReq{value: v, done: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-g.done:
		return 0, errClosed
	}
	err := <-r.done
	return r.seq, err
}

func (g *groupCommit) loop() {
	defer g.wg.Done()
	batch := make([]*gcReq, 0, 256)
	for {
		var first *gcReq
		select {
		case first = <-g.reqs:
		case <-g.done:
			for {
				select {
				case r := <-g.reqs:
					g.run([]*gcReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		size := int64(len(first.value))
	fill:
		for size < g.maxBytes {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
				size += int64(len(r.value))
			default:
				break fill
			}
		}
		g.run(batch)
	}
}

func (g *groupCommit) run(batch []*gcReq) {
	err := g.commit(batch)
	g.commits.Add(1)
	g.records.Add(int64(len(batch)))
	for _, r := range batch {
		r.done <- err
	}
}

// Close stops the loop after committing what is queued. Callers must have
// stopped appending.
func (g *groupCommit) Close() {
	close(g.done)
	g.wg.Wait()
}

func (g *groupCommit) stats() (commits, records int64) {
	return g.commits.Load(), g.records.Load()
}
