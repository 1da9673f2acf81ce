package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/conman-dev/conman/api"
	"github.com/conman-dev/conman/channels"
	"github.com/conman-dev/conman/pty"
)

// DefaultMessageBytes bounds the text of one output message a Console
// sends.
const DefaultMessageBytes = 64 << 10

// ConsoleOptions configures a [Console]. The zero value is usable.
type ConsoleOptions struct {
	// States makes the console send `state` (Running or Stopped) to each
	// session when it attaches and whenever its terminal starts or ends,
	// in order with the output.
	States bool
	// MessageBytes bounds the text of one output message; zero means
	// DefaultMessageBytes.
	MessageBytes int
	// OnDetached, when set, is called each time a session's attachment
	// fell too far behind and was detached from the terminal (it is
	// resumed once the session catches up). It suits metrics.
	OnDetached func()
}

// Console shares a terminal among the sessions attached to a channel. It
// holds one terminal at a time; [Console.Replace] installs the next one (a
// restarted shell, a new run). Each attached session has its own pump
// goroutine that moves the terminal's output to the session: first what
// the scrollback holds, then live output, paced by the session's write
// queue. A session that falls so far behind that its attachment overflows
// is detached from the terminal, which carries on for the others; its
// pump resumes it from where it stopped once it has caught up, replaying
// what the scrollback still holds and saying how much was skipped.
//
// The terminal's size is the smallest among the read-write sessions that
// sent one, row and column counts taken separately.
//
// The console owns the terminals given to it: Replace closes the previous
// one and Close closes the current one.
type Console struct {
	ch     *channels.Channel
	opts   ConsoleOptions
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	pumps  sync.WaitGroup

	// mu guards the following.
	mu       sync.Mutex
	gen      *generation   // nil until the first Replace
	next     chan struct{} // closed when gen is replaced, or by Close
	attached map[*channels.Session]context.CancelFunc
	sizes    map[*channels.Session]termSize
	applied  termSize
	pipeMode bool
	closed   bool
}

// generation is one terminal of the console.
type generation struct {
	term   *pty.Session
	banner string // told to sessions that saw the previous terminal
}

type termSize struct{ rows, cols uint16 }

// NewConsole returns a console for ch with no terminal yet.
func NewConsole(ch *channels.Channel, opts ConsoleOptions) *Console {
	if opts.MessageBytes <= 0 {
		opts.MessageBytes = DefaultMessageBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Console{
		ch:       ch,
		opts:     opts,
		ctx:      ctx,
		cancel:   cancel,
		next:     make(chan struct{}),
		attached: make(map[*channels.Session]context.CancelFunc),
		sizes:    make(map[*channels.Session]termSize),
	}
}

// Attach joins s to the channel and starts its pump. It is meant for the
// service's [channels.Attacher.Attach].
func (c *Console) Attach(s *channels.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ch.Join(s)
	if c.closed || c.attached[s] != nil {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.attached[s] = cancel
	c.pumps.Add(1)
	go func() {
		defer c.pumps.Done()
		c.pump(ctx, s)
	}()
}

// Detach stops s's pump and forgets its terminal size. It is meant for the
// service's [channels.Detacher.Detach].
func (c *Console) Detach(s *channels.Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cancel := c.attached[s]; cancel != nil {
		cancel()
		delete(c.attached, s)
	}
	if _, ok := c.sizes[s]; ok {
		delete(c.sizes, s)
		c.resizeLocked()
	}
}

// Current returns the current terminal, or nil before the first.
func (c *Console) Current() *pty.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == nil {
		return nil
	}
	return c.gen.term
}

// Size returns the size a new terminal should have: the one the attached
// sessions agree on, or zero values (the pty package's default) when none
// sent one.
func (c *Console) Size() (rows, cols uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied.rows, c.applied.cols
}

// Replace makes term the console's terminal, closing the previous one.
// Sessions that saw the previous terminal are told banner (if not empty)
// between its last output and the new terminal's first. The console takes
// ownership of term; it reports false, and closes term, when the console
// is closed.
func (c *Console) Replace(term *pty.Session, banner string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = term.Close()
		return false
	}
	old := c.gen
	c.gen = &generation{term: term, banner: banner}
	close(c.next)
	c.next = make(chan struct{})
	size, pipeMode := c.applied, c.pipeMode
	c.mu.Unlock()
	if size.rows > 0 {
		_ = term.Resize(size.rows, size.cols)
	}
	if pipeMode {
		_ = term.SetPipeMode(true)
	}
	if old != nil {
		_ = old.term.Close()
	}
	return true
}

// Input writes text to the current terminal, as if typed. Input for a
// terminal that has ended, or before the first, is dropped.
func (c *Console) Input(ctx context.Context, text string) error {
	term := c.Current()
	if term == nil {
		return nil
	}
	err := term.Input(ctx, []byte(text))
	if errors.Is(err, pty.ErrClosed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("input: %w", err)
	}
	return nil
}

// Resize records the size of s's terminal and applies the smallest of
// those recorded. Sizes from read-only sessions are ignored: a viewer
// does not reshape the terminal of those who type in it.
func (c *Console) Resize(s *channels.Session, rows, cols uint32) error {
	if rows == 0 || cols == 0 || rows > 0xffff || cols > 0xffff {
		return fmt.Errorf("resize: bad terminal size %dx%d", rows, cols)
	}
	if s.ReadOnly() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attached[s] == nil {
		return nil // it left meanwhile
	}
	c.sizes[s] = termSize{uint16(rows), uint16(cols)}
	return c.resizeLocked()
}

// resizeLocked applies the smallest recorded size if it changed.
func (c *Console) resizeLocked() error {
	var want termSize
	for _, size := range c.sizes {
		if want.rows == 0 || size.rows < want.rows {
			want.rows = size.rows
		}
		if want.cols == 0 || size.cols < want.cols {
			want.cols = size.cols
		}
	}
	if want == c.applied || want.rows == 0 {
		return nil
	}
	c.applied = want
	if c.gen == nil {
		return nil
	}
	if err := c.gen.term.Resize(want.rows, want.cols); err != nil && !errors.Is(err, pty.ErrClosed) {
		return fmt.Errorf("resize: %w", err)
	}
	return nil
}

// Sane restores the current terminal's sane modes and leaves pipe mode.
func (c *Console) Sane() error {
	return c.setModes(false, (*pty.Session).Sane)
}

// SetPipeMode switches pipe mode (raw, no echo) on or off, for the current
// terminal and the ones after it.
func (c *Console) SetPipeMode(on bool) error {
	return c.setModes(on, func(t *pty.Session) error { return t.SetPipeMode(on) })
}

func (c *Console) setModes(pipeMode bool, apply func(*pty.Session) error) error {
	c.mu.Lock()
	c.pipeMode = pipeMode
	var term *pty.Session
	if c.gen != nil {
		term = c.gen.term
	}
	c.mu.Unlock()
	if term == nil {
		return nil
	}
	if err := apply(term); err != nil && !errors.Is(err, pty.ErrClosed) {
		return fmt.Errorf("terminal modes: %w", err)
	}
	return nil
}

// Close stops every pump, closes the current terminal (stopping its
// process group) and waits for all of it.
func (c *Console) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.pumps.Wait()
		return
	}
	c.closed = true
	gen := c.gen
	close(c.next)
	c.mu.Unlock()
	c.cancel()
	if gen != nil {
		_ = gen.term.Close()
	}
	c.pumps.Wait()
}

// pump moves output to s until ctx ends or s goes away. It owns its
// attachment; everything it sends to s goes through send, so s receives
// state, banners and output in one order.
func (c *Console) pump(ctx context.Context, s *channels.Session) {
	p := &pumpState{c: c, s: s, sentState: -1}
	defer p.detach()
	var seen *generation // the terminal p reads or has read to its end
	for {
		if p.att == nil {
			c.mu.Lock()
			gen, next := c.gen, c.next
			if gen != nil && gen != seen {
				p.att = gen.term.Attach()
			}
			closed := c.closed
			c.mu.Unlock()
			if closed {
				return
			}
			if gen == nil || gen == seen {
				if gen == nil && !p.state(ctx, api.State_Stopped) {
					return
				}
				select {
				case <-next:
					continue
				case <-ctx.Done():
					return
				}
			}
			if seen != nil && gen.banner != "" && !p.text(ctx, p.dec.Flush()+gen.banner) {
				return
			}
			seen = gen
			live := api.State_Running
			select {
			case <-p.att.Done():
				live = api.State_Stopped // it ended before we came
			default:
			}
			if !p.state(ctx, live) {
				return
			}
		}
		chunk, err := p.att.Next(ctx)
		switch {
		case err == nil:
			if !p.text(ctx, p.dec.Decode(chunk)) {
				return
			}
		case errors.Is(err, io.EOF):
			p.att = nil
			if !p.text(ctx, p.dec.Flush()) || !p.state(ctx, api.State_Stopped) {
				return
			}
		case errors.Is(err, pty.ErrOverflow):
			if c.opts.OnDetached != nil {
				c.opts.OnDetached()
			}
			offset := p.att.Offset()
			resumed, rerr := seen.term.Resume(offset)
			if rerr != nil {
				resumed = seen.term.Attach() // cannot happen: offset was reached
			}
			p.att = resumed
			if lost := resumed.Lost(); lost > 0 {
				notice := fmt.Sprintf("\r\n[conman: this terminal fell behind; %d bytes of output were skipped]\r\n", lost)
				if !p.text(ctx, p.dec.Flush()+notice) {
					return
				}
			}
		default:
			return // ctx ended, or the attachment was detached by us
		}
	}
}

// pumpState is what one pump keeps.
type pumpState struct {
	c         *Console
	s         *channels.Session
	att       *pty.Attachment
	dec       TextDecoder
	sentState api.State // -1: none yet
}

func (p *pumpState) detach() {
	if p.att != nil {
		p.att.Detach()
	}
}

// state sends st unless it is what the session was told last. Only
// consoles with States send any.
func (p *pumpState) state(ctx context.Context, st api.State) bool {
	if !p.c.opts.States || p.sentState == st {
		return true
	}
	p.sentState = st
	return p.send(ctx, &api.Command{Body: &api.Command_State{State: st}})
}

// text sends text as output messages of at most MessageBytes each.
func (p *pumpState) text(ctx context.Context, text string) bool {
	if text == "" {
		return true
	}
	for _, piece := range SplitText(text, p.c.opts.MessageBytes) {
		if !p.send(ctx, &api.Command{Body: &api.Command_Output{Output: piece}}) {
			return false
		}
	}
	return true
}

// send waits until the session's queue is at most half full, then queues
// cmd: a session is never sent more than it can hold, so a slow one is
// never cut off for its terminal's output.
func (p *pumpState) send(ctx context.Context, cmd *api.Command) bool {
	if err := p.s.WaitQueueBelow(ctx, p.s.QueueLimit()/2); err != nil {
		return false
	}
	p.c.ch.SendTo(p.s, cmd)
	return true
}
