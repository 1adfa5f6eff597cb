package onelease

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The lease file is an append-only log of text records, one a line:
//
//	<op> <mac> <ip> <expiry unix seconds> <hostname or -> <crc32 of the rest, hex>
//
// op is "bound" (a lease granted or renewed), "free" (released) or
// "declined" (an address found in use: mac is all zeros after a client's
// DECLINE, the holder's after an ARP probe found one). Later
// records win. On start the log is read, records outside the current pool or
// expired are dropped, and the survivors are rewritten as a compact log
// (temporary file, fsync, rename), to which the daemon then appends.
//
// Each record is written with one write(2) before the ACK leaves, so a crash
// of the process loses nothing; the file is fsynced in the background (every
// SyncInterval) so a power loss loses at most that window, and a client
// whose lease was lost keeps its address anyway: a renewal of a free address
// of the pool is acknowledged. A torn or corrupt record (no newline, bad
// checksum) is skipped with a warning, never fatal.
const fileHeader = "# one-dhcp4v2 leases v1: op mac ip expiry hostname crc32\n"

type op string

const (
	opBound    op = "bound"
	opFree     op = "free"
	opDeclined op = "declined"
)

// record is one line of the log.
type record struct {
	op       op
	mac      mac
	ip       netip.Addr
	expiry   time.Time
	hostname string
}

func (r record) line() []byte { return r.appendLine(make([]byte, 0, 96)) }

// appendLine appends the record's line to b. Without fmt: it runs for every
// lease granted or renewed.
func (r record) appendLine(b []byte) []byte {
	start := len(b)
	b = append(b, r.op...)
	b = append(b, ' ')
	b = appendMAC(b, r.mac)
	b = append(b, ' ')
	b = r.ip.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.expiry.Unix(), 10)
	b = append(b, ' ')
	if r.hostname == "" {
		b = append(b, '-')
	} else {
		b = append(b, r.hostname...)
	}
	sum := crc32.ChecksumIEEE(b[start:])
	b = append(b, ' ')
	const hex = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, hex[sum>>uint(shift)&0xf])
	}
	return append(b, '\n')
}

// appendMAC appends m as net.HardwareAddr.String does (lower case, colons).
func appendMAC(b []byte, m mac) []byte {
	const hex = "0123456789abcdef"
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hex[x>>4], hex[x&0xf])
	}
	return b
}

// parseRecord parses one line (without its newline).
func parseRecord(line string) (record, error) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return record{}, errors.New("no checksum")
	}
	body, sum := line[:i], line[i+1:]
	want, err := strconv.ParseUint(sum, 16, 32)
	if err != nil || uint32(want) != crc32.ChecksumIEEE([]byte(body)) {
		return record{}, errors.New("bad checksum")
	}
	f := strings.Fields(body)
	if len(f) != 5 {
		return record{}, fmt.Errorf("%d fields, want 6", len(f)+1)
	}
	var r record
	switch op(f[0]) {
	case opBound, opFree, opDeclined:
		r.op = op(f[0])
	default:
		return record{}, fmt.Errorf("unknown op %q", f[0])
	}
	hw, err := net.ParseMAC(f[1])
	if err != nil || len(hw) != 6 {
		return record{}, fmt.Errorf("bad MAC %q", f[1])
	}
	copy(r.mac[:], hw)
	if r.ip, err = netip.ParseAddr(f[2]); err != nil || !r.ip.Is4() {
		return record{}, fmt.Errorf("bad address %q", f[2])
	}
	sec, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return record{}, fmt.Errorf("bad expiry %q", f[3])
	}
	r.expiry = time.Unix(sec, 0)
	if f[4] != "-" {
		r.hostname = f[4]
	}
	return r, nil
}

// readLog reads every intact record of path. A missing file is empty; torn
// and corrupt records are counted, not fatal.
func readLog(path string) (recs []record, bad int, torn bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("reading lease file: %w", err)
	}
	if n := len(data); n > 0 && data[n-1] != '\n' {
		// The last write was cut short (crash, full disk): drop that record.
		torn = true
		data = data[:bytes.LastIndexByte(data, '\n')+1]
	}
	recs = make([]record, 0, bytes.Count(data, []byte{'\n'}))
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		r, err := parseRecord(line)
		if err != nil {
			bad++
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, torn, sc.Err()
}

// store appends records to the lease log and syncs it in the background.
type store struct {
	path string
	mu   sync.Mutex
	f    *os.File
	// lines counts the records in the file since the last compaction.
	lines int
	dirty bool
	buf   []byte // the record being written
	stop  chan struct{}
	done  chan struct{}
}

// openStore rewrites path with recs (compaction) and opens it for appending.
func openStore(path string, recs []record, syncEvery time.Duration) (*store, error) {
	s := &store{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.rewrite(recs); err != nil {
		return nil, err
	}
	if syncEvery <= 0 {
		syncEvery = time.Second
	}
	go s.syncLoop(syncEvery)
	return s, nil
}

// rewrite replaces the file with recs atomically and reopens it for appending.
func (s *store) rewrite(recs []record) error {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating lease directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp*")
	if err != nil {
		return fmt.Errorf("compacting lease file: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 64<<10)
	w.WriteString(fileHeader)
	for _, r := range recs {
		w.Write(r.line())
	}
	werr := w.Flush()
	if werr == nil {
		werr = tmp.Chmod(0o640)
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), s.path)
	}
	if werr != nil {
		return fmt.Errorf("compacting lease file: %w", werr)
	}
	syncDir(dir)
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("opening lease file: %w", err)
	}
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.lines, s.dirty = f, len(recs), false
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// append writes one record with a single write(2).
func (s *store) append(r record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return errors.New("lease file is closed")
	}
	s.buf = r.appendLine(s.buf[:0])
	if _, err := s.f.Write(s.buf); err != nil {
		return fmt.Errorf("writing lease file: %w", err)
	}
	s.lines++
	s.dirty = true
	return nil
}

// compact rewrites the log with live when it has grown well past it.
func (s *store) compactIfLarge(live func() []record, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil || s.lines < 4*n+4096 {
		return nil
	}
	return s.rewrite(live())
}

func (s *store) syncLoop(every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// fsync without the lock: an fsync can take tens of
			// milliseconds, and requests must not wait for it.
			s.mu.Lock()
			f := s.f
			dirty := s.dirty && f != nil
			s.dirty = false
			s.mu.Unlock()
			if dirty {
				_ = f.Sync()
			}
		}
	}
}

// Close syncs and closes the file.
func (s *store) Close() error {
	select {
	case <-s.stop:
		return nil
	default:
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := errors.Join(s.f.Sync(), s.f.Close())
	s.f = nil
	return err
}

// CountActive counts the unexpired leases a lease file records (for status;
// the file is only read).
func CountActive(path string, now time.Time) (int, error) {
	recs, _, _, err := readLog(path)
	if err != nil {
		return 0, err
	}
	byMAC := map[mac]record{}
	owner := map[netip.Addr]mac{}
	for _, r := range recs {
		switch r.op {
		case opBound:
			if old, ok := byMAC[r.mac]; ok && owner[old.ip] == r.mac {
				delete(owner, old.ip)
			}
			if m, ok := owner[r.ip]; ok {
				delete(byMAC, m)
			}
			byMAC[r.mac], owner[r.ip] = r, r.mac
		case opFree:
			if x, ok := byMAC[r.mac]; ok && x.ip == r.ip {
				x.expiry = r.expiry
				byMAC[r.mac] = x
			}
		case opDeclined:
			if m, ok := owner[r.ip]; ok {
				delete(byMAC, m)
				delete(owner, r.ip)
			}
		}
	}
	n := 0
	for _, r := range byMAC {
		if now.Before(r.expiry) {
			n++
		}
	}
	return n, nil
}

// RecordLine is the log line of a lease of ip to macStr until expiry (for
// tests and benchmarks that prepare a lease file); "" if either is invalid.
func RecordLine(macStr, ip string, expiry time.Time) string {
	hw, err := net.ParseMAC(macStr)
	a, aerr := netip.ParseAddr(ip)
	if err != nil || len(hw) != 6 || aerr != nil || !a.Is4() {
		return ""
	}
	r := record{op: opBound, ip: a, expiry: expiry}
	copy(r.mac[:], hw)
	return string(r.line())
}
