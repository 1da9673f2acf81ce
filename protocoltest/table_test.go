package protocoltest_test

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docPath is the compatibility statement the tests hold the daemon to.
const docPath = "../docs/protocol.md"

// Headings of the tables read from docPath.
const (
	servicesHeading = "## Services"
	anyBodyHeading  = "### Services that take any body"
	bodiesHeading   = "## Every body"
)

// bodyRow is one row of the table of every body.
type bodyRow struct {
	number    int
	name      string
	servedBy  []string // wire names
	channel0  bool     // served on channel 0
	replies   []string // body names of the documented replies
	refusedRO bool     // read-only sessions are refused it
	notes     string
}

// anyBodyRow is one service that takes any body.
type anyBodyRow struct {
	service   string
	reply     string   // the body it answers with
	except    []string // bodies it answers as unsupported
	acceptsRO bool     // read-only sessions are refused nothing
}

// protocolDoc is what the tests read from docPath.
type protocolDoc struct {
	services []string // wire names, in table order
	anyBody  map[string]*anyBodyRow
	bodies   []*bodyRow
	byName   map[string]*bodyRow
}

// readDoc reads docPath's tables.
func readDoc(t *testing.T) *protocolDoc {
	t.Helper()
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	doc := &protocolDoc{anyBody: map[string]*anyBodyRow{}, byName: map[string]*bodyRow{}}

	for _, row := range table(t, lines, servicesHeading, 4) {
		names := ticked(row[0])
		if len(names) != 1 {
			t.Errorf("%s: row %q: want one wire name in its first cell", servicesHeading, row)
			continue
		}
		doc.services = append(doc.services, names[0])
	}
	for _, row := range table(t, lines, anyBodyHeading, 4) {
		names, answers := ticked(row[0]), ticked(row[1])
		if len(names) != 1 || len(answers) == 0 {
			t.Errorf("%s: row %q: want a wire name and the reply, first, in backticks", anyBodyHeading, row)
			continue
		}
		doc.anyBody[names[0]] = &anyBodyRow{
			service:   names[0],
			reply:     answers[0],
			except:    ticked(row[2]),
			acceptsRO: strings.Contains(row[3], "accepted"),
		}
	}
	for _, row := range table(t, lines, bodiesHeading, 6) {
		number, err := strconv.Atoi(row[0])
		names := ticked(row[1])
		if err != nil || len(names) != 1 {
			t.Errorf("%s: row %q: want a field number and a body name", bodiesHeading, row)
			continue
		}
		r := &bodyRow{
			number:    number,
			name:      names[0],
			servedBy:  ticked(row[2]),
			channel0:  strings.Contains(row[2], "channel 0"),
			replies:   ticked(row[3]),
			refusedRO: row[4] == "refused",
			notes:     row[5],
		}
		if row[4] != "" && row[4] != "refused" {
			t.Errorf("%s: %s: read-only column %q: want empty or \"refused\"", bodiesHeading, r.name, row[4])
		}
		if doc.byName[r.name] != nil {
			t.Errorf("%s: %s has two rows", bodiesHeading, r.name)
		}
		doc.bodies = append(doc.bodies, r)
		doc.byName[r.name] = r
	}
	return doc
}

// served reports whether the row says target (a wire name, or "" for
// channel 0) serves the body.
func (r *bodyRow) served(target string) bool {
	if target == "" {
		return r.channel0
	}
	for _, s := range r.servedBy {
		if s == target {
			return true
		}
	}
	return false
}

// table returns the cells of the body rows of the first table after
// heading, checking that each has columns cells.
func table(t *testing.T, lines []string, heading string, columns int) [][]string {
	t.Helper()
	start := -1
	for i, line := range lines {
		if strings.TrimSpace(line) == heading {
			start = i
			break
		}
	}
	if start < 0 {
		t.Fatalf("%s: no heading %q", docPath, heading)
	}
	i := start + 1
	for i < len(lines) && !strings.HasPrefix(lines[i], "|") {
		if strings.HasPrefix(lines[i], "#") {
			t.Fatalf("%s: no table under %q", docPath, heading)
		}
		i++
	}
	if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "|---") {
		t.Fatalf("%s: the table under %q has no header", docPath, heading)
	}
	var rows [][]string
	for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		cells := cells(lines[i])
		if len(cells) != columns {
			t.Errorf("%s: %q: %d cells, want %d", heading, lines[i], len(cells), columns)
			continue
		}
		rows = append(rows, cells)
	}
	return rows
}

// cells splits a table row into its trimmed cells.
func cells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	line = strings.TrimSuffix(line, "|")
	var out []string
	for {
		k := strings.Index(line, "|")
		for k > 0 && line[k-1] == '\\' {
			next := strings.Index(line[k+1:], "|")
			if next < 0 {
				k = -1
				break
			}
			k += 1 + next
		}
		if k < 0 {
			out = append(out, unescapeCell(line))
			return out
		}
		out = append(out, unescapeCell(line[:k]))
		line = line[k+1:]
	}
}

func unescapeCell(s string) string { return strings.TrimSpace(strings.ReplaceAll(s, `\|`, "|")) }

// tick matches a backticked word.
var tick = regexp.MustCompile("`([^`]+)`")

// ticked returns the backticked words of a cell.
func ticked(cell string) []string {
	var out []string
	for _, m := range tick.FindAllStringSubmatch(cell, -1) {
		out = append(out, m[1])
	}
	return out
}
