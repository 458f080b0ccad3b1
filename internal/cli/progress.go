package cli

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/archfit/archfit/internal/image"
)

// imageProgress is the line a long image run keeps up to date on a
// terminal's stderr: distinct images done of the total, then per registry
// (with requests that failed), and the time so far. It shows after a
// second, is redrawn five times a second, and is erased at the end; nothing
// at all when stderr is not a terminal (CI logs), never on stdout.
type imageProgress struct {
	w     io.Writer
	now   func() time.Time
	delay time.Duration
	every time.Duration

	stop, stopped chan struct{}

	mu      sync.Mutex
	start   time.Time
	shown   bool
	drawn   string
	left    map[string]int // reference -> its requests not yet done
	regOf   map[string]string
	regs    []string
	total   map[string]int // registry -> distinct images
	done    map[string]int
	failed  map[string]int
	nImages int
	nDone   int
}

// newImageProgress is a progress line on w, or nil when w is not a
// terminal.
func newImageProgress(w io.Writer) *imageProgress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &imageProgress{w: w, now: time.Now, delay: time.Second, every: 200 * time.Millisecond}
}

func (p *imageProgress) Start(reqs []image.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.start, p.shown = p.now(), false
	p.left, p.regOf = map[string]int{}, map[string]string{}
	p.total, p.done, p.failed = map[string]int{}, map[string]int{}, map[string]int{}
	p.regs, p.nImages, p.nDone = nil, 0, 0
	for _, q := range reqs {
		if p.left[q.Ref] == 0 {
			reg := image.RegistryOf(q.Ref)
			if p.total[reg] == 0 {
				p.regs = append(p.regs, reg)
			}
			p.regOf[q.Ref] = reg
			p.total[reg]++
			p.nImages++
		}
		p.left[q.Ref]++
	}
	// The busiest registries first.
	sort.SliceStable(p.regs, func(i, j int) bool { return p.total[p.regs[i]] > p.total[p.regs[j]] })
	p.stop, p.stopped = make(chan struct{}), make(chan struct{})
	go func(stop, stopped chan struct{}) {
		defer close(stopped)
		t := time.NewTicker(p.every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}(p.stop, p.stopped)
}

// Done counts an image once its last request is done.
func (p *imageProgress) Done(q image.Request, rep *image.Report) {
	p.mu.Lock()
	defer p.mu.Unlock()
	reg := p.regOf[q.Ref]
	if rep != nil && rep.Error != nil {
		p.failed[reg]++
	}
	if p.left[q.Ref]--; p.left[q.Ref] > 0 {
		return
	}
	p.done[reg]++
	p.nDone++
}

// draw rewrites the line, once the run has lasted delay.
func (p *imageProgress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.now().Sub(p.start) < p.delay {
		return
	}
	if l := p.line(); l != p.drawn || !p.shown {
		p.shown, p.drawn = true, l
		fmt.Fprintf(p.w, "\r\033[K%s", l)
	}
}

func (p *imageProgress) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "images %d/%d", p.nDone, p.nImages)
	for i, reg := range p.regs {
		if i == 4 {
			fmt.Fprintf(&b, "  +%d registries", len(p.regs)-4)
			break
		}
		fmt.Fprintf(&b, "  %s %d/%d", reg, p.done[reg], p.total[reg])
		if p.failed[reg] > 0 {
			fmt.Fprintf(&b, " (%d failed)", p.failed[reg])
		}
	}
	fmt.Fprintf(&b, "  %s", p.now().Sub(p.start).Round(time.Second))
	return b.String()
}

// Finish stops the redraws and erases the line.
func (p *imageProgress) Finish() {
	if p.stop != nil {
		close(p.stop)
		<-p.stopped
		p.stop = nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}
