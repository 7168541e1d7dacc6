package repl

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"strings"
)

// manualPaths are where tor's manual page is installed (Debian's tor
// package ships it gzipped).
var manualPaths = []string{
	"/usr/share/man/man1/tor.1.gz",
	"/usr/local/share/man/man1/tor.1.gz",
	"/usr/share/man/man1/tor.1",
	"/usr/local/share/man/man1/tor.1",
}

// manualEntry returns what tor's manual says of a config option: its
// synopsis line, then its text, as plain text; "" when there is no manual
// or the option is not in it. The manual is roff as asciidoc writes it:
// each option a ".PP" paragraph whose first line is "\fBName\fR ...",
// its text indented between ".RS 4" and the matching ".RE".
func manualEntry(option string) string {
	for _, p := range manualPaths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			gz, err := gzip.NewReader(f)
			if err != nil {
				continue
			}
			r = gz
		}
		return manualFind(r, option)
	}
	return ""
}

// manualFind reads roff from r and returns option's entry as text. The
// lines of a paragraph are joined and wrapped again (the manual puts each
// emphasized word on a line of its own); a no-fill block (.nf to .fi, an
// example) keeps its lines.
func manualFind(r io.Reader, option string) string {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out, para []string
	afterPP, in, noFill := false, false, false
	depth := 0
	indent := func() string { return strings.Repeat("  ", max(depth, 1)) }
	flush := func() {
		if len(para) > 0 {
			out = append(out, wrapText(strings.Join(para, " "), indent(), 78)...)
			para = para[:0]
		}
	}
	blank := func() {
		flush()
		if len(out) > 0 && out[len(out)-1] != "" {
			out = append(out, "")
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if !in {
			if afterPP && strings.HasPrefix(line, `\fB`) {
				name, _, _ := strings.Cut(line[3:], `\fR`)
				if strings.EqualFold(roffText(name), option) {
					in = true
					out = append(out, roffText(line))
					continue
				}
			}
			afterPP = line == ".PP"
			continue
		}
		switch {
		case strings.HasPrefix(line, ".RS"):
			flush()
			depth++
		case line == ".RE":
			flush()
			depth--
			if depth <= 0 {
				return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
			}
		case line == ".nf":
			flush()
			noFill = true
		case line == ".fi":
			noFill = false
		case line == ".PP", line == ".sp", line == "":
			blank()
		case strings.HasPrefix(line, "."):
			// Other macros: no text.
		case noFill:
			out = append(out, indent()+roffText(line))
		default:
			para = append(para, roffText(line))
		}
	}
	flush()
	if in {
		return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
	}
	return ""
}

// roffText removes roff's font changes and escapes.
func roffText(s string) string {
	r := strings.NewReplacer(
		`\fB`, "", `\fI`, "", `\fR`, "", `\fP`, "",
		`\&`, "", `\-`, "-", `\(cq`, "'", `\(aq`, "'", `\(oq`, "'",
		`\(dq`, `"`, `\(lq`, `"`, `\(rq`, `"`, `\(em`, "--", `\(en`, "-",
		`\e`, `\`, `\ `, " ", `\(bu`, "*",
	)
	return r.Replace(s)
}

// wrapText breaks s into lines of at most width, each starting with
// indent.
func wrapText(s, indent string, width int) []string {
	var lines []string
	cur := indent
	for _, w := range strings.Fields(s) {
		if len(cur) > len(indent) && len(cur)+1+len(w) > width {
			lines = append(lines, cur)
			cur = indent
		}
		if len(cur) > len(indent) {
			cur += " "
		}
		cur += w
	}
	if len(cur) > len(indent) {
		lines = append(lines, cur)
	}
	return lines
}
