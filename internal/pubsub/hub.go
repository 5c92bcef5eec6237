// Package pubsub shares one Redis pub/sub connection among the waiters of
// a backend: the Redis backend's (one hub per Locker) and Redlock's (one
// per node). Releases publish on a channel named like the lock; a waiter
// listens on it.
package pubsub

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Released is the payload of a message that wakes every listener of its
// channel. Any other payload names the one listener it is for (a queued
// waiter whose turn has come), followed by what the message tells it,
// after a space, if anything; listeners without a name hear every
// message.
const Released = "released"

// Idle is how long the connection stays open after its last listener
// left, so that a backend that waits again and again (every contended
// acquisition) does not dial and subscribe each time.
const Idle = 10 * time.Second

// IdleGoroutines names the goroutines of an idle connection, which
// outlive the last listener by up to Idle: for a goroutine leak check.
var IdleGoroutines = []string{"github.com/xsync-go/xsync/internal/pubsub.(*Hub).read"}

// Hub is one pub/sub connection of a Redis client, opened by the first
// listener and shared by all, subscribed to the channels they listen on.
// It is safe for concurrent use.
type Hub struct {
	subscribe func(ctx context.Context, channels ...string) *goredis.PubSub

	mu    sync.Mutex
	ps    *goredis.PubSub
	idle  *time.Timer // closes ps once no channel is left for Idle
	chans map[string]*channel
}

type channel struct {
	listeners map[*listener]struct{}
	confirmed chan struct{} // closed when the server confirmed the subscription
}

type listener struct {
	name    string
	deliver func(msg string)
}

// New returns a hub that subscribes through subscribe (a go-redis
// client's Subscribe).
func New(subscribe func(ctx context.Context, channels ...string) *goredis.PubSub) *Hub {
	return &Hub{subscribe: subscribe}
}

// Listen calls notify on every message of channel for name ("" for every
// message), and when the connection was subscribed again after a break
// (a message may have been lost meanwhile), until stop is called. It
// returns once the server has confirmed the subscription: a message
// published after that reaches the listener, short of a broken
// connection. notify must not block.
func (h *Hub) Listen(ctx context.Context, ch, name string, notify func()) (stop func(), err error) {
	return h.ListenFor(ctx, ch, name, func(string) { notify() })
}

// ListenFor is Listen, with deliver called with what a message for name
// tells after the name ("" if nothing, and on a subscription again).
func (h *Hub) ListenFor(ctx context.Context, ch, name string, deliver func(msg string)) (stop func(), err error) {
	l := &listener{name: name, deliver: deliver}
	h.mu.Lock()
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	if h.ps == nil {
		h.ps = h.subscribe(context.WithoutCancel(ctx))
		h.chans = make(map[string]*channel)
		go h.read(h.ps)
	}
	c, ok := h.chans[ch]
	if !ok {
		c = &channel{listeners: make(map[*listener]struct{}), confirmed: make(chan struct{})}
		h.chans[ch] = c
	}
	c.listeners[l] = struct{}{}
	ps := h.ps
	h.mu.Unlock()
	stop = sync.OnceFunc(func() { h.leave(ch, l) })
	if !ok {
		// go-redis keeps the channel in its list even if this write
		// fails, and subscribes again on reconnect: a later listener of
		// the channel is then confirmed by the reconnect.
		if err := ps.Subscribe(ctx, ch); err != nil {
			stop()
			return nil, err
		}
	}
	select {
	case <-c.confirmed:
		return stop, nil
	case <-ctx.Done():
		stop()
		return nil, ctx.Err()
	}
}

// leave removes l from ch's listeners and unsubscribes if it was the last;
// once no channel is left for Idle, the connection is closed.
func (h *Hub) leave(ch string, l *listener) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c, ok := h.chans[ch]
	if !ok {
		return
	}
	delete(c.listeners, l)
	if len(c.listeners) > 0 {
		return
	}
	delete(h.chans, ch)
	ps := h.ps
	// UNSUBSCRIBE is written, not awaited; a message that arrives before
	// it takes effect wakes nobody.
	_ = ps.Unsubscribe(context.Background(), ch)
	if len(h.chans) == 0 {
		h.idle = time.AfterFunc(Idle, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.ps == ps && len(h.chans) == 0 {
				h.ps, h.idle = nil, nil
				ps.Close()
			}
		})
	}
}

// read dispatches ps's messages until ps is closed. A confirmation marks
// the channel subscribed, and wakes its listeners if it was before (go-redis
// subscribed again after a reconnect: a release may have been missed); a
// message wakes the listeners it is for.
func (h *Hub) read(ps *goredis.PubSub) {
	for {
		m, err := ps.Receive(context.Background())
		if errors.Is(err, goredis.ErrClosed) {
			return
		}
		if err != nil {
			// The connection broke; the next Receive reconnects and
			// subscribes again. Pace the attempts while the server is down.
			time.Sleep(100 * time.Millisecond)
			continue
		}
		h.mu.Lock()
		if h.ps != ps { // closed while this message was on its way
			h.mu.Unlock()
			return
		}
		switch m := m.(type) {
		case *goredis.Subscription:
			if c, ok := h.chans[m.Channel]; ok && m.Kind == "subscribe" {
				select {
				case <-c.confirmed:
					c.wake("", "")
				default:
					close(c.confirmed)
				}
			}
		case *goredis.Message:
			if c, ok := h.chans[m.Channel]; ok {
				to, msg, _ := strings.Cut(m.Payload, " ")
				if to == Released {
					to = ""
				}
				c.wake(to, msg)
			}
		}
		h.mu.Unlock()
	}
}

// wake delivers msg to the listeners a message for name is for: all if
// name is "", else the one of that name and those without one.
func (c *channel) wake(name, msg string) {
	for l := range c.listeners {
		if name == "" || l.name == "" || l.name == name {
			l.deliver(msg)
		}
	}
}
