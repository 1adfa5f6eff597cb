package failover

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ParseLine reads one line of keepalived's notify FIFO:
// `INSTANCE "ETH1" MASTER 100`. relevant is false for valid lines that
// carry no decision (GROUP lines repeat what the instances said; VS and RS
// lines are LVS health). A malformed line is an error; it never changes
// anything by itself.
func ParseLine(line string) (ev Event, relevant bool, err error) {
	f := strings.Fields(line)
	if len(f) < 3 || len(f) > 4 {
		return Event{}, false, fmt.Errorf("malformed FIFO line %q: want TYPE \"NAME\" STATE [PRIORITY]", line)
	}
	switch f[0] {
	case "INSTANCE":
	case "GROUP", "VS", "RS":
		return Event{}, false, nil
	default:
		return Event{}, false, fmt.Errorf("malformed FIFO line %q: unknown type %q", line, f[0])
	}
	name := strings.Trim(f[1], `"`)
	if name == "" || strings.ContainsAny(name, `"`) {
		return Event{}, false, fmt.Errorf("malformed FIFO line %q: bad instance name", line)
	}
	var st Role
	switch f[2] {
	case "MASTER":
		st = Master
	case "BACKUP":
		st = Backup
	case "FAULT", "STOP":
		// STOP: keepalived is shutting the instance down (it releases the VIPs).
		st = Fault
	case "DELETED":
		// Removed by a reload: nothing is known about it any more.
		st = Unknown
	default:
		return Event{}, false, fmt.Errorf("malformed FIFO line %q: unknown state %q", line, f[2])
	}
	return Event{Kind: Line, Name: name, State: st}, true, nil
}

// fifo is keepalived's notify FIFO as the daemon holds it open.
//
// The daemon creates the FIFO when it is missing, so keepalived never owns
// it (keepalived deletes a FIFO it created when it stops, which would leave
// a reader holding a dead one), and opens it read-write: a reader is then
// never told end-of-file when keepalived restarts, and keepalived's writes
// never block. If the path is replaced anyway (another inode), the daemon
// reopens it.
type fifo struct {
	path  string
	f     *os.File
	ino   uint64
	dead  chan struct{} // closed when the reader of f stops
	lines chan<- string
}

// ensure creates the FIFO if needed and (re)opens it when the path no
// longer names the open one. It reports whether it opened it.
func (p *fifo) ensure() (bool, error) {
	st, err := os.Stat(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(p.path), 0o755); err != nil {
			return false, fmt.Errorf("creating the FIFO's directory: %w", err)
		}
		if err := syscall.Mkfifo(p.path, 0o600); err != nil && !errors.Is(err, fs.ErrExist) {
			return false, fmt.Errorf("creating FIFO %s: %w", p.path, err)
		}
		st, err = os.Stat(p.path)
	}
	if err != nil {
		return false, fmt.Errorf("looking at FIFO %s: %w", p.path, err)
	}
	if st.Mode()&fs.ModeNamedPipe == 0 {
		return false, fmt.Errorf("%s is not a FIFO (%v)", p.path, st.Mode())
	}
	ino := st.Sys().(*syscall.Stat_t).Ino
	if p.f != nil && ino == p.ino && !closed(p.dead) {
		return false, nil
	}
	p.close()
	f, err := os.OpenFile(p.path, os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("opening FIFO %s: %w", p.path, err)
	}
	p.f, p.ino, p.dead = f, ino, make(chan struct{})
	go read(f, p.lines, p.dead)
	return true, nil
}

func (p *fifo) close() {
	if p.f != nil {
		p.f.Close()
		p.f = nil
	}
}

// maxLine bounds a FIFO line; longer ones are garbage.
const maxLine = 4096

func closed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// read sends every line of f until f is closed or fails (then ensure
// reopens it). Overlong lines are cut to maxLine (and then rejected by
// ParseLine).
func read(f *os.File, lines chan<- string, dead chan struct{}) {
	defer close(dead)
	r := bufio.NewReaderSize(f, maxLine)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			lines <- string(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = r.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 {
			lines <- strings.TrimRight(string(line), "\r\n")
		}
		if err != nil {
			return
		}
	}
}
