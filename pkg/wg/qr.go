package wg

import (
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"
)

// quiet is the blank margin around the code, in modules (the standard's 4).
const quiet = 4

// WriteQR draws text as a QR code on a terminal, for the WireGuard mobile
// apps ("create from QR code"): two modules per character cell with the
// half-block characters, in black on white whatever the terminal's colours
// (ANSI escapes), so phones read it on dark and light terminals alike.
func WriteQR(w io.Writer, text string) error {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return fmt.Errorf("encoding the QR code: %w", err)
	}
	black := func(x, y int) bool { return code.Black(x-quiet, y-quiet) }
	n := code.Size + 2*quiet
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		b.WriteString("\x1b[30;47m")
		for x := 0; x < n; x++ {
			top, bottom := black(x, y), y+1 < n && black(x, y+1)
			switch {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteString("\x1b[0m\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}
