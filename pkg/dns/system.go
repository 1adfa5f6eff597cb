package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/hypercx/vrouter/pkg/fsroot"
)

// CheckConf is the real Checker: `unbound-checkconf <path>`.
func CheckConf(ctx context.Context, path string) error {
	bin, err := exec.LookPath("unbound-checkconf")
	if err != nil {
		return fmt.Errorf("unbound-checkconf not found (is unbound installed?): %w", err)
	}
	var out bytes.Buffer
	c := exec.CommandContext(ctx, bin, path)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return fmt.Errorf("unbound-checkconf: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ProbeLoopback is the real Prober: it asks 127.0.0.1:53 for localhost's
// address (one of unbound's built-in local zones, so no upstream is
// involved); any well-formed answer means unbound is serving.
func ProbeLoopback(ctx context.Context, tcp bool) error {
	return Query(ctx, fmt.Sprintf("127.0.0.1:%d", Port), "localhost.", tcp)
}

// Query sends one A question for name to server and checks that an answer
// with the same id comes back (whatever its code).
func Query(ctx context.Context, server, name string, tcp bool) error {
	id := uint16(rand.Uint32())
	n, err := dnsmessage.NewName(name)
	if err != nil {
		return fmt.Errorf("building query: %w", err)
	}
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
	}
	q, err := msg.Pack()
	if err != nil {
		return fmt.Errorf("building query: %w", err)
	}
	network := "udp"
	if tcp {
		network = "tcp"
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok || time.Until(deadline) > time.Second {
		deadline = time.Now().Add(time.Second)
	}
	_ = conn.SetDeadline(deadline)
	buf := make([]byte, 4096)
	if tcp {
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
		if _, err := conn.Write(append(framed, q...)); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, buf[:2]); err != nil {
			return err
		}
		l := int(binary.BigEndian.Uint16(buf[:2]))
		if _, err := io.ReadFull(conn, buf[:l]); err != nil {
			return err
		}
		buf = buf[:l]
	} else {
		if _, err := conn.Write(q); err != nil {
			return err
		}
		l, err := conn.Read(buf)
		if err != nil {
			return err
		}
		buf = buf[:l]
	}
	var p dnsmessage.Parser
	h, err := p.Start(buf)
	if err != nil {
		return fmt.Errorf("parsing answer: %w", err)
	}
	if h.ID != id || !h.Response {
		return errors.New("the answer does not match the question")
	}
	return nil
}

// DetectRootHints returns the first of RootHintsFiles present under root,
// "" when there is none (unbound then uses its built-in root hints).
func DetectRootHints(root fsroot.Root) string {
	for _, f := range RootHintsFiles {
		if root.Exists(f) {
			return f
		}
	}
	return ""
}
