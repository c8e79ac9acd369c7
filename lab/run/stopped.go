package run

import (
	"regexp"
	"strconv"
	"strings"
)

// NetstatCounter reads one counter of /proc/net/netstat (per namespace):
// section is "TcpExt" or "IpExt", name e.g. "IPReversePathFilter". The
// file holds each section twice, a line of names then a line of values.
func NetstatCounter(netstat, section, name string) (uint64, bool) {
	lines := strings.Split(netstat, "\n")
	for i := 0; i+1 < len(lines); i++ {
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(names) == 0 || names[0] != section+":" || len(values) != len(names) || values[0] != section+":" {
			continue
		}
		for j, n := range names {
			if n == name {
				v, err := strconv.ParseUint(values[j], 10, 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}

var countedDrop = regexp.MustCompile(`(?m)^\[(\d+):\d+\] (-A \S+ .*-j (?:DROP|REJECT)\b.*)$`)

// CountedDrops are the DROP and REJECT rules of an `iptables-save -c` dump
// that counted packets, with their counts: a drop a walk may have hit.
func CountedDrops(save string) []string {
	var out []string
	table := ""
	for _, line := range strings.Split(save, "\n") {
		if strings.HasPrefix(line, "*") {
			table = strings.TrimPrefix(line, "*")
			continue
		}
		m := countedDrop.FindStringSubmatch(line)
		if m == nil || m[1] == "0" {
			continue
		}
		out = append(out, table+": "+m[2]+" ("+m[1]+" packets)")
	}
	return out
}
