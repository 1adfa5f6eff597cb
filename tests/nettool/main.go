// Command nettool is the lab's traffic helper: a TCP/UDP server that answers
// every connection or datagram with what it saw ("peer=<addr:port>
// local=<addr:port> name=<name>"), and a client that prints that answer. Tests
// read the answer to see which address a NAT produced.
//
//	nettool serve [--tcp ADDR]... [--udp ADDR]... [--name NAME]
//	nettool probe tcp|udp ADDR [--timeout D]
//	nettool hold ADDR [--interval D] [--duration D]   (a long-lived TCP connection)
//	nettool load ADDR [--conns N] [--duration D] [--until NAME]   (steady TCP load)
//	nettool init   (PID 1 of a router instance's PID namespace: reaps orphans)
//	nettool reboot IFACE ADDR   (a DHCP client in INIT-REBOOT asking for ADDR: prints "ACK <addr>" or "NAK <message>")
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nettool serve|probe|hold|load|init|reboot ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "probe":
		err = probe(os.Args[2:])
	case "hold":
		err = hold(os.Args[2:])
	case "load":
		err = load(os.Args[2:])
	case "init":
		initReaper()
	case "reboot":
		err = reboot(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nettool:", err)
		os.Exit(1)
	}
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	var tcps, udps list
	fs.Var(&tcps, "tcp", "TCP address to listen on (repeatable)")
	fs.Var(&udps, "udp", "UDP address to listen on (repeatable)")
	name := fs.String("name", "", "name included in every answer")
	_ = fs.Parse(args)
	for _, a := range tcps {
		l, err := net.Listen("tcp4", a)
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go answerTCP(c, *name)
			}
		}()
	}
	for _, a := range udps {
		pc, err := net.ListenPacket("udp4", a)
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 2048)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_ = n
				fmt.Fprintf(pcWriter{pc, from}, "peer=%s local=%s name=%s\n", from, a, *name)
			}
		}()
	}
	fmt.Println("ready")
	select {}
}

type pcWriter struct {
	pc net.PacketConn
	to net.Addr
}

func (w pcWriter) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }

// answerTCP writes the greeting, then echoes lines (for long-lived tests).
func answerTCP(c net.Conn, name string) {
	defer c.Close()
	fmt.Fprintf(c, "peer=%s local=%s name=%s\n", c.RemoteAddr(), c.LocalAddr(), name)
	_, _ = io.Copy(c, c)
}

func probe(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: probe tcp|udp ADDR [--timeout D]")
	}
	proto, addr := args[0], args[1]
	fs := flag.NewFlagSet("probe", flag.ExitOnError)
	timeout := fs.Duration("timeout", 2*time.Second, "give up after")
	_ = fs.Parse(args[2:])
	deadline := time.Now().Add(*timeout)
	switch proto {
	case "tcp":
		c, err := net.DialTimeout("tcp4", addr, *timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Print(line)
	case "udp":
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2048)
		// Retry the datagram a few times within the timeout.
		for time.Now().Before(deadline) {
			if _, err := c.Write([]byte("probe\n")); err != nil {
				return err
			}
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := c.Read(buf)
			if err == nil {
				fmt.Print(string(buf[:n]))
				return nil
			}
		}
		return fmt.Errorf("no UDP answer from %s within %v", addr, *timeout)
	default:
		return fmt.Errorf("unknown protocol %q", proto)
	}
	return nil
}

// hold keeps one TCP connection open, sending a line every interval and
// expecting it echoed; it prints one line per round trip and fails on the
// first lost one.
func hold(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: hold ADDR [--interval D] [--duration D]")
	}
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	interval := fs.Duration("interval", 200*time.Millisecond, "time between round trips")
	duration := fs.Duration("duration", 30*time.Second, "total time")
	timeout := fs.Duration("timeout", 10*time.Second, "longest tolerated round trip")
	_ = fs.Parse(args[1:])
	c, err := net.DialTimeout("tcp4", args[0], 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil {
		return err
	}
	fmt.Println("connected")
	end := time.Now().Add(*duration)
	for i := 0; time.Now().Before(end); i++ {
		_ = c.SetDeadline(time.Now().Add(*timeout))
		msg := fmt.Sprintf("ping %d\n", i)
		if _, err := io.WriteString(c, msg); err != nil {
			return fmt.Errorf("round trip %d: %w", i, err)
		}
		got, err := r.ReadString('\n')
		if err != nil || got != msg {
			return fmt.Errorf("round trip %d: %q %v", i, got, err)
		}
		fmt.Printf("ok %d\n", i)
		time.Sleep(*interval)
	}
	return nil
}

// load keeps conns TCP connections in flight one after the other against
// ADDR (connect, read the greeting, close) until --duration passes, SIGTERM
// arrives, or (with --until) a server called NAME answers. It then prints
// one line: "ok=N failed=N names=a:1,b:2 until=<unix ns of NAME's first
// answer, 0 if none>" and the first errors.
func load(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: load ADDR [--conns N] [--duration D] [--until NAME]")
	}
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	conns := fs.Int("conns", 4, "connections in flight")
	duration := fs.Duration("duration", time.Hour, "total time")
	until := fs.String("until", "", "stop at the first answer from this server")
	_ = fs.Parse(args[1:])
	addr := args[0]
	stop := make(chan struct{})
	var once sync.Once
	end := func() { once.Do(func() { close(stop) }) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; end() }()
	time.AfterFunc(*duration, end)
	var mu sync.Mutex
	ok, failed := 0, 0
	names := map[string]int{}
	var errs []string
	var untilAt int64
	var wg sync.WaitGroup
	fmt.Println("ready")
	for i := 0; i < *conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name, err := once1(addr)
				now := time.Now().UnixNano()
				mu.Lock()
				if err != nil {
					failed++
					if len(errs) < 5 {
						errs = append(errs, err.Error())
					}
				} else {
					ok++
					names[name]++
					if *until != "" && name == *until && untilAt == 0 {
						untilAt = now
						end()
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var ns []string
	for n, c := range names {
		ns = append(ns, fmt.Sprintf("%s:%d", n, c))
	}
	sort.Strings(ns)
	fmt.Printf("ok=%d failed=%d names=%s until=%d\n", ok, failed, strings.Join(ns, ","), untilAt)
	for _, e := range errs {
		fmt.Println("error:", e)
	}
	return nil
}

// once1 makes one connection and returns the server's name.
func once1(addr string) (string, error) {
	c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	_, name, _ := strings.Cut(strings.TrimSpace(line), "name=")
	return name, nil
}

// initReaper is the init of a router instance's PID namespace: every
// process orphaned inside (a daemon's supervisor once its starter exited)
// becomes its child, and it reaps each as soon as it ends, as the
// appliance's init does. Without it the zombie of a stopped supervisor
// stays until the machine's own init gets to it, and `supervise-daemon
// --stop` waits for it all that time. It runs until the namespace goes
// (SIGKILL, the only signal PID 1 of a namespace gets from outside).
func initReaper() {
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, syscall.SIGCHLD)
	tick := time.NewTicker(time.Second)
	for {
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
		select {
		case <-chld:
		case <-tick.C:
		}
	}
}

// reboot is a DHCP client in the INIT-REBOOT state (RFC 2131 4.3.2): it
// broadcasts a REQUEST for the address it had, with no server identifier
// and no ciaddr (the broadcast flag set, so the answer is broadcast too),
// and prints the server's answer: three tries, two seconds each.
func reboot(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: nettool reboot IFACE ADDR")
	}
	want := net.ParseIP(args[1]).To4()
	if want == nil {
		return fmt.Errorf("bad address %q", args[1])
	}
	iface, err := net.InterfaceByName(args[0])
	if err != nil {
		return err
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); serr == nil {
				serr = syscall.BindToDevice(int(fd), iface.Name)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", ":68")
	if err != nil {
		return err
	}
	defer pc.Close()
	req, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(iface.HardwareAddr),
		dhcpv4.WithBroadcast(true), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(want)))
	if err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := pc.WriteTo(req.ToBytes(), &net.UDPAddr{IP: net.IPv4bcast, Port: 67}); err != nil {
			return err
		}
		deadline := time.Now().Add(2 * time.Second)
		for {
			_ = pc.SetReadDeadline(deadline)
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break // timed out: try again
			}
			resp, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || resp.TransactionID != req.TransactionID || resp.OpCode != dhcpv4.OpcodeBootReply {
				continue
			}
			switch resp.MessageType() {
			case dhcpv4.MessageTypeAck:
				fmt.Println("ACK", resp.YourIPAddr)
				return nil
			case dhcpv4.MessageTypeNak:
				fmt.Println("NAK", resp.Message())
				return nil
			}
		}
	}
	return fmt.Errorf("no answer to the REQUEST for %s", want)
}
