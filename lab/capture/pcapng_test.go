package capture

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/gopacket/pcapgo"
)

func writeSample(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewPcapngWriter(&buf, "test section")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := w.AddInterface("pod51/eth0", "lab x")
	b, _ := w.AddInterface("vpc/br-a", "lab x")
	frame := bytes.Repeat([]byte{0xab}, 61) // odd length exercises padding
	ts := time.Unix(1700000000, 123456789)
	if err := w.WritePacket(a, ts, frame, 61, true, "labctl: request"); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(b, ts.Add(time.Microsecond), frame[:60], 60, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPcapngReadsBackWithInterfaceNamesAndNanosecondTimes(t *testing.T) {
	r, err := pcapgo.NewNgReader(bytes.NewReader(writeSample(t)), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var ifaces []int
	var lens []int
	var first time.Time
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if first.IsZero() {
			first = ci.Timestamp
		}
		ifaces = append(ifaces, ci.InterfaceIndex)
		lens = append(lens, len(data))
	}
	if len(ifaces) != 2 || ifaces[0] != 0 || ifaces[1] != 1 || lens[0] != 61 || lens[1] != 60 {
		t.Fatalf("read back interfaces %v lengths %v", ifaces, lens)
	}
	if first.UnixNano() != 1700000000123456789 {
		t.Errorf("timestamp %d, want nanosecond precision", first.UnixNano())
	}
	for i, want := range []string{"pod51/eth0", "vpc/br-a"} {
		intf, err := r.Interface(i)
		if err != nil || intf.Name != want {
			t.Errorf("interface %d is %q (%v), want %q", i, intf.Name, err, want)
		}
	}
}

func TestTsharkSeesDirectionAndComments(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark not installed (scripts/setup.sh installs it)")
	}
	p := filepath.Join(t.TempDir(), "x.pcapng")
	if err := os.WriteFile(p, writeSample(t), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("tshark", "-r", p, "-T", "fields", "-e", "frame.interface_name",
		"-e", "frame.packet_flags_direction", "-e", "frame.comment").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var got []string
	for _, l := range lines {
		if strings.Contains(l, "/") { // skip tshark's root warning
			got = append(got, l)
		}
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], "pod51/eth0\t0x00000002\tlabctl: request") ||
		!strings.HasPrefix(got[1], "vpc/br-a\t0x00000001") {
		t.Fatalf("tshark read:\n%s", out)
	}
}
