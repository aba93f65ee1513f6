package lab

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// SynAck is one SYN-ACK seen on the wire, with the Ethernet source that
// sent it. Ack is the client's initial sequence number plus one, so two
// SYN-ACKs with the same tuple and Ack answer the very same SYN.
type SynAck struct {
	SrcMAC string
	Server netip.AddrPort
	Client netip.AddrPort
	Ack    uint32
}

// synKey identifies one client SYN: its 4-tuple and initial sequence number.
type synKey struct {
	client, server netip.AddrPort
	ack            uint32
}

// Double is a SYN answered by more than one MAC: two nodes both accepted the
// same connection, which the farm must never do.
type Double struct {
	Client netip.AddrPort
	Server netip.AddrPort
	Ack    uint32
	// MACs are the Ethernet sources that answered, sorted; Nodes are their
	// node names where known (the MAC otherwise).
	MACs  []string
	Nodes []string
}

func (d Double) String() string {
	return fmt.Sprintf("SYN %s -> %s (isn+1 %d) answered by %s", d.Client, d.Server, d.Ack, strings.Join(d.Nodes, " and "))
}

// Report is what a capture saw so far.
type Report struct {
	// SynAcks counts SYN-ACKs seen, retransmissions included.
	SynAcks int
	// BySource counts SYN-ACKs per Ethernet source, named by node where
	// known: a quick view of who accepted connections.
	BySource map[string]int
	// Doubles lists the SYNs answered by two or more MACs; it must be empty.
	Doubles []Double
	// KernelDropped is tcpdump's "dropped by kernel" count at stop; if it is
	// not zero the capture may have missed a double.
	KernelDropped int
}

// synTracker turns SYN-ACKs into a Report. Safe for concurrent use.
type synTracker struct {
	mu      sync.Mutex
	name    func(mac string) string
	total   int
	bySrc   map[string]int
	answers map[synKey][]string
}

func newSynTracker(name func(mac string) string) *synTracker {
	if name == nil {
		name = func(mac string) string { return mac }
	}
	return &synTracker{name: name, bySrc: map[string]int{}, answers: map[synKey][]string{}}
}

func (t *synTracker) add(s SynAck) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	t.bySrc[t.name(s.SrcMAC)]++
	k := synKey{client: s.Client, server: s.Server, ack: s.Ack}
	if !slices.Contains(t.answers[k], s.SrcMAC) {
		t.answers[k] = append(t.answers[k], s.SrcMAC)
	}
}

func (t *synTracker) report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := Report{SynAcks: t.total, BySource: map[string]int{}}
	for k, v := range t.bySrc {
		r.BySource[k] = v
	}
	for k, macs := range t.answers {
		if len(macs) < 2 {
			continue
		}
		d := Double{Client: k.client, Server: k.server, Ack: k.ack, MACs: slices.Sorted(slices.Values(macs))}
		for _, m := range d.MACs {
			d.Nodes = append(d.Nodes, t.name(m))
		}
		r.Doubles = append(r.Doubles, d)
	}
	slices.SortFunc(r.Doubles, func(a, b Double) int {
		if c := a.Client.Compare(b.Client); c != 0 {
			return c
		}
		return int(a.Ack) - int(b.Ack)
	})
	return r
}

// pcapReader reads a classic pcap stream (tcpdump -w -) of Ethernet frames.
type pcapReader struct {
	r     *bufio.Reader
	order binary.ByteOrder
	buf   []byte
}

// errNotEthernet reports a capture on a link type the parser does not know.
var errNotEthernet = errors.New("pcap link type is not Ethernet")

func newPcapReader(r io.Reader) (*pcapReader, error) {
	br := bufio.NewReader(r)
	hdr := make([]byte, 24)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	var order binary.ByteOrder
	switch binary.LittleEndian.Uint32(hdr) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		order = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("not a pcap stream (magic %x)", hdr[:4])
	}
	if lt := order.Uint32(hdr[20:]) & 0xffff; lt != 1 {
		return nil, fmt.Errorf("%w (%d)", errNotEthernet, lt)
	}
	return &pcapReader{r: br, order: order}, nil
}

// next returns the next frame; the slice is valid until the next call.
func (p *pcapReader) next() ([]byte, error) {
	var rec [16]byte
	if _, err := io.ReadFull(p.r, rec[:]); err != nil {
		return nil, err
	}
	n := p.order.Uint32(rec[8:])
	if n > 1<<18 {
		return nil, fmt.Errorf("pcap record of %d bytes: stream is corrupt", n)
	}
	if cap(p.buf) < int(n) {
		p.buf = make([]byte, n)
	}
	p.buf = p.buf[:n]
	if _, err := io.ReadFull(p.r, p.buf); err != nil {
		return nil, err
	}
	return p.buf, nil
}

// parseSynAck extracts a SYN-ACK from an Ethernet frame (IPv4 or IPv6, one
// optional VLAN tag, IPv6 extension headers walked); ok is false for any
// other frame.
func parseSynAck(f []byte) (s SynAck, ok bool) {
	if len(f) < 14 {
		return s, false
	}
	src := net.HardwareAddr(f[6:12]).String()
	et := binary.BigEndian.Uint16(f[12:])
	p := f[14:]
	if et == 0x8100 && len(p) >= 4 {
		et = binary.BigEndian.Uint16(p[2:])
		p = p[4:]
	}
	var saddr, daddr netip.Addr
	var tcp []byte
	switch et {
	case 0x0800:
		if len(p) < 20 || p[0]>>4 != 4 || p[9] != 6 {
			return s, false
		}
		ihl := int(p[0]&0x0f) * 4
		if ihl < 20 || len(p) < ihl {
			return s, false
		}
		saddr = netip.AddrFrom4([4]byte(p[12:16]))
		daddr = netip.AddrFrom4([4]byte(p[16:20]))
		tcp = p[ihl:]
	case 0x86dd:
		if len(p) < 40 || p[0]>>4 != 6 {
			return s, false
		}
		saddr = netip.AddrFrom16([16]byte(p[8:24]))
		daddr = netip.AddrFrom16([16]byte(p[24:40]))
		next, rest := p[6], p[40:]
		for hops := 0; next != 6; hops++ {
			// Hop-by-hop, routing, destination options: length in 8-octet
			// units after the first 8. Anything else is not TCP for us.
			if hops > 8 || (next != 0 && next != 43 && next != 60) || len(rest) < 8 {
				return s, false
			}
			l := (int(rest[1]) + 1) * 8
			if len(rest) < l {
				return s, false
			}
			next, rest = rest[0], rest[l:]
		}
		tcp = rest
	default:
		return s, false
	}
	if len(tcp) < 14 {
		return s, false
	}
	const syn, ack = 0x02, 0x10
	if tcp[13]&(syn|ack) != syn|ack {
		return s, false
	}
	return SynAck{
		SrcMAC: src,
		Server: netip.AddrPortFrom(saddr, binary.BigEndian.Uint16(tcp[0:])),
		Client: netip.AddrPortFrom(daddr, binary.BigEndian.Uint16(tcp[2:])),
		Ack:    binary.BigEndian.Uint32(tcp[8:]),
	}, true
}

// Sync markers: a frame of the IEEE "local experimental" EtherType that the
// lab sends out of the captured port itself. Packets reach tcpdump in order,
// so once a marker is read back everything before it has been read too.
const (
	markerType  = 0x88b5
	markerMagic = "tests/lab sync "
)

// markerFrame builds marker seq: to dst, from a locally administered source
// that no host uses (so the bridge learns nothing that matters).
func markerFrame(dst net.HardwareAddr, seq uint64) []byte {
	f := make([]byte, 0, 64)
	f = append(f, dst...)
	f = append(f, 0x02, 0x1a, 0xb0, 0xff, 0xff, 0xfe)
	f = binary.BigEndian.AppendUint16(f, markerType)
	f = append(f, markerMagic...)
	f = binary.BigEndian.AppendUint64(f, seq)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// parseMarker returns the sequence number of a marker frame.
func parseMarker(f []byte) (uint64, bool) {
	p, ok := bytesCut(f, 14)
	if !ok || binary.BigEndian.Uint16(f[12:]) != markerType || len(p) < len(markerMagic)+8 || string(p[:len(markerMagic)]) != markerMagic {
		return 0, false
	}
	return binary.BigEndian.Uint64(p[len(markerMagic):]), true
}

func bytesCut(b []byte, n int) ([]byte, bool) {
	if len(b) < n {
		return nil, false
	}
	return b[n:], true
}

// droppedRE finds tcpdump's closing "N packets dropped by kernel".
var droppedRE = regexp.MustCompile(`(\d+) packets? dropped by kernel`)

func parseDropped(s string) int {
	m := droppedRE.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
