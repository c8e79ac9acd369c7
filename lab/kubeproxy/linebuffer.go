package kubeproxy

import (
	"bytes"
	"slices"
)

// lineBuffer accumulates restore lines, words joined by single spaces, like
// kube-proxy's proxyutil.LineBuffer. It is a bare byte slice so a partial
// sync can cut an unchanged service's chains back out (see cut).
type lineBuffer struct {
	b     []byte
	lines int
}

// write appends one line made of words.
func (lb *lineBuffer) write(words ...string) {
	for i, w := range words {
		if i > 0 {
			lb.b = append(lb.b, ' ')
		}
		lb.b = append(lb.b, w...)
	}
	lb.b = append(lb.b, '\n')
	lb.lines++
}

// write2 appends one line made of two word lists, saving callers a slice
// concatenation for "common args + specific args" rules.
func (lb *lineBuffer) write2(a []string, words ...string) {
	for i, w := range a {
		if i > 0 {
			lb.b = append(lb.b, ' ')
		}
		lb.b = append(lb.b, w...)
	}
	for _, w := range words {
		lb.b = append(lb.b, ' ')
		lb.b = append(lb.b, w...)
	}
	lb.b = append(lb.b, '\n')
	lb.lines++
}

// chainLine appends the ":CHAIN - [0:0]" declaration (MakeChainLine). With
// --noflush it creates the chain, or flushes it if it exists.
func (lb *lineBuffer) chainLine(c Chain) {
	lb.b = append(lb.b, ':')
	lb.b = append(lb.b, c...)
	lb.b = append(lb.b, " - [0:0]\n"...)
	lb.lines++
}

// span is a byte range of a lineBuffer plus the number of lines in it.
type span struct {
	start, end, lines int
}

// mark returns the current end, to open a span.
func (lb *lineBuffer) mark() span { return span{start: len(lb.b), lines: lb.lines} }

// close finishes a span opened by mark.
func (lb *lineBuffer) close(s span) span {
	return span{start: s.start, end: len(lb.b), lines: lb.lines - s.lines}
}

// cut removes the spans (ordered, non-overlapping) from the buffer.
func (lb *lineBuffer) cut(spans []span) {
	for i := len(spans) - 1; i >= 0; i-- {
		s := spans[i]
		lb.b = append(lb.b[:s.start], lb.b[s.end:]...)
		lb.lines -= s.lines
	}
}

// appendLinesReversed appends the lines of buf (each ending in '\n') to b
// in reverse byte order. For ":NAME - [0:0]" lines that is reverse strcmp
// order of the names, since the space after a name sorts below every
// character a name may hold.
func appendLinesReversed(b, buf []byte) []byte {
	lines := bytes.SplitAfter(buf, []byte{'\n'})
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	slices.SortFunc(lines, func(x, y []byte) int { return bytes.Compare(y, x) })
	for _, l := range lines {
		b = append(b, l...)
	}
	return b
}
