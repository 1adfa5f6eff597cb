// Command vrbench measures the figures the issues name, on this machine, in
// throwaway namespaces, and prints them with their targets (`make bench`).
// Each figure is the median of several runs; the spread is shown too.
package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hypercx/vrouter/tests/lab"
)

// figure is one measured number.
type figure struct {
	name, target, value, verdict string
}

type bench struct {
	lab     *lab.Lab
	figures []figure
	runs    int
}

func (b *bench) add(name, target, value string, ok bool) {
	v := "ok"
	if !ok {
		v = "MISSED"
	}
	b.figures = append(b.figures, figure{name, target, value, v})
	fmt.Printf("  %-64s %s (target %s) %s\n", name, value, target, v)
}

// timeRuns runs f n times and returns the median and the range.
func timeRuns(n int, f func() error) (med, lo, hi time.Duration, err error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := f(); err != nil {
			return 0, 0, 0, err
		}
		ds = append(ds, time.Since(start))
	}
	med, lo, hi = stats(ds)
	return med, lo, hi, nil
}

// stats returns the median, the minimum and the maximum of xs (not empty).
func stats[T cmp.Ordered](xs []T) (med, lo, hi T) {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2], s[0], s[len(s)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func spread(med, lo, hi time.Duration) string {
	return fmt.Sprintf("%s (min %s, max %s)", ms(med), ms(lo), ms(hi))
}

func main() {
	runs := flag.Int("runs", 7, "runs per figure")
	only := flag.String("only", "", "comma-separated groups to run (default: all)")
	flag.Parse()
	if why := lab.CanRun(); why != "" {
		fmt.Fprintln(os.Stderr, "vrbench:", why)
		os.Exit(1)
	}
	if err := lab.Build(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b := &bench{runs: *runs}
	groups := []struct {
		name string
		run  func(*bench) error
	}{
		{"nat4", benchNAT4},
		{"onegate", benchOneGate},
		{"dns", benchDNS},
		{"ha", benchHA},
		{"dhcp", benchDHCP},
		{"sdnat4", benchSDNAT4},
		{"wg", benchWG},
		{"lb", benchLB},
		{"recontext", benchRecontext},
	}
	failed := false
	for _, g := range groups {
		if *only != "" && !strings.Contains(","+*only+",", ","+g.name+",") {
			continue
		}
		fmt.Printf("== %s\n", g.name)
		// Each group in a lab of its own: groups reuse host names
		// ("inet"), and one group's leftovers never weigh on the next.
		l, err := lab.New("b")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b.lab = l
		stop := l.CloseOnSignal()
		if err := g.run(b); err != nil {
			fmt.Fprintf(os.Stderr, "vrbench %s: %v\n", g.name, err)
			failed = true
		}
		stop()
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tMEASURED\tTARGET\t")
	for _, f := range b.figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.name, f.value, f.target, f.verdict)
	}
	tw.Flush()
	if failed {
		os.Exit(1)
	}
}
