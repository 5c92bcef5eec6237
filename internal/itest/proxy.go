package itest

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy between a client and a server that can delay the
// server's replies or cut the link, to put a real client through the
// faults a network has: a slow or frozen server (Delay), a server that is
// gone (Down). It implements conformance.Fault. It needs no Docker.
type Proxy struct {
	t      testing.TB
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	mu      sync.Mutex
	delay   time.Duration
	down    bool
	conns   map[*link]struct{}
	changed chan struct{} // closed and replaced whenever delay changes
}

// NewProxy listens on a free loopback port and forwards each connection to
// target. It is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{t: t, target: target, ln: ln, conns: make(map[*link]struct{}), changed: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the host:port clients should dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Delay holds every chunk the server sends for d before the client gets
// it; what the client sends reaches the server at once. Delay(0) ends it.
func (p *Proxy) Delay(d time.Duration) {
	p.mu.Lock()
	p.setDelayLocked(d)
	p.mu.Unlock()
}

func (p *Proxy) setDelayLocked(d time.Duration) {
	p.delay = d
	close(p.changed)
	p.changed = make(chan struct{})
}

// Down cuts every open connection and every new one at once: to the
// client the server is gone.
func (p *Proxy) Down() {
	p.mu.Lock()
	p.down = true
	conns := p.conns
	p.conns = make(map[*link]struct{})
	p.mu.Unlock()
	for l := range conns {
		l.close()
	}
}

// Heal ends Delay and Down. Connections cut by Down stay cut; clients
// reconnect.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.down = false
	p.setDelayLocked(0)
	p.mu.Unlock()
}

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Down()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s, closed: make(chan struct{})}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			l.close()
			continue
		}
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); l.pipe(s, c, nil) }()
		go func() { defer p.wg.Done(); l.pipe(c, s, p.currentDelay) }()
	}
}

// currentDelay returns the delay in force and a channel closed when it
// changes.
func (p *Proxy) currentDelay() (time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delay, p.changed
}

type link struct {
	client, server net.Conn
	once           sync.Once
	closed         chan struct{}
}

func (l *link) close() {
	l.once.Do(func() {
		close(l.closed)
		l.client.Close()
		l.server.Close()
	})
}

type chunk struct {
	data []byte
	at   time.Time // when it was read
}

// hold waits until c is due under the delay in force (which may change
// meanwhile); false if the link was closed first.
func (l *link) hold(c chunk, delay func() (time.Duration, <-chan struct{})) bool {
	for {
		d, changed := delay()
		wait := time.Until(c.at.Add(d))
		if wait <= 0 {
			return true
		}
		t := time.NewTimer(wait) // the network's delay itself
		select {
		case <-t.C:
			return true
		case <-changed:
			t.Stop()
		case <-l.closed:
			t.Stop()
			return false
		}
	}
}

// pipe copies from src to dst; with delay set, each chunk waits until it
// is that old (in order: a later chunk never overtakes an earlier one).
func (l *link) pipe(dst io.Writer, src io.Reader, delay func() (time.Duration, <-chan struct{})) {
	defer l.close()
	chunks := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range chunks {
			ok := delay == nil || l.hold(c, delay)
			if !ok {
				l.close()
				for range chunks {
				}
				return
			}
			if _, err := dst.Write(c.data); err != nil {
				l.close()
				for range chunks {
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunks <- chunk{data: append([]byte(nil), buf[:n]...), at: time.Now()}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.close()
			}
			break
		}
	}
	close(chunks)
	<-done
}
