package lab

import (
	"bytes"
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
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// SynAck is one SYN-ACK seen on the wire, with the Ethernet source that
// sent it. Ack is the client's initial sequence number plus one, so two
// SYN-ACKs with the same tuple and Ack answer the very same SYN.
type SynAck struct {
	SrcMAC string
	Server netip.AddrPort
	Client netip.AddrPort
	Ack    uint32
	// At is when the capture saw it (zero when parsed from bytes alone).
	At time.Time
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
	// At is when the first answer was seen, so a soak can tell which fault
	// the double belongs to.
	At time.Time
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
	first   map[synKey]time.Time
}

func newSynTracker(name func(mac string) string) *synTracker {
	if name == nil {
		name = func(mac string) string { return mac }
	}
	return &synTracker{name: name, bySrc: map[string]int{}, answers: map[synKey][]string{}, first: map[synKey]time.Time{}}
}

func (t *synTracker) add(s SynAck) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total++
	t.bySrc[t.name(s.SrcMAC)]++
	k := synKey{client: s.Client, server: s.Server, ack: s.Ack}
	if _, ok := t.first[k]; !ok {
		t.first[k] = s.At
	}
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
		d := Double{Client: k.client, Server: k.server, Ack: k.ack, MACs: slices.Sorted(slices.Values(macs)), At: t.first[k]}
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

// errNotEthernet reports a capture on a link type the parser does not know.
var errNotEthernet = errors.New("pcap link type is not Ethernet")

// newPcapReader reads a classic pcap stream (tcpdump -w -) of Ethernet
// frames, in either byte order, with gopacket's pcapgo.
func newPcapReader(r io.Reader) (*pcapgo.Reader, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read pcap header: %w", err)
	}
	if lt := pr.LinkType(); lt != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("%w (%d)", errNotEthernet, lt)
	}
	return pr, nil
}

// frameParser decodes captured frames with gopacket's layers: Ethernet, one
// or more VLAN tags, IPv4 or IPv6 (hop-by-hop, routing and destination
// options headers skipped), TCP. It reuses its layers from frame to frame,
// so it is not safe for concurrent use.
type frameParser struct {
	eth     layers.Ethernet
	vlan    layers.Dot1Q
	ip4     layers.IPv4
	ip6     layers.IPv6
	ext     layers.IPv6ExtensionSkipper
	tcp     layers.TCP
	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
}

func newFrameParser() *frameParser {
	p := &frameParser{}
	p.parser = gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet, &p.eth, &p.vlan, &p.ip4, &p.ip6, &p.ext, &p.tcp)
	p.parser.IgnoreUnsupported = true // stop quietly at the TCP payload or any other protocol
	return p
}

// synAck extracts a SYN-ACK from an Ethernet frame; ok is false for any
// other frame, for a fragment and for one cut before the end of its TCP
// header (tcpdump's -s 160 keeps Ethernet, a VLAN tag, IPv6 and a full TCP
// header).
func (p *frameParser) synAck(f []byte) (s SynAck, ok bool) {
	if err := p.parser.DecodeLayers(f, &p.decoded); err != nil {
		return s, false
	}
	var src, dst netip.Addr
	tcp := false
	for _, t := range p.decoded {
		switch t {
		case layers.LayerTypeIPv4:
			src, dst = addrOf(p.ip4.SrcIP), addrOf(p.ip4.DstIP)
		case layers.LayerTypeIPv6:
			src, dst = addrOf(p.ip6.SrcIP), addrOf(p.ip6.DstIP)
		case layers.LayerTypeIPv6Fragment:
			return s, false // a later fragment's bytes are no TCP header
		case layers.LayerTypeTCP:
			tcp = true
		}
	}
	if !tcp || !src.IsValid() || !p.tcp.SYN || !p.tcp.ACK {
		return s, false
	}
	return SynAck{
		SrcMAC: p.eth.SrcMAC.String(),
		Server: netip.AddrPortFrom(src, uint16(p.tcp.SrcPort)),
		Client: netip.AddrPortFrom(dst, uint16(p.tcp.DstPort)),
		Ack:    p.tcp.Ack,
	}, true
}

// marker returns the sequence number of a sync marker frame.
func (p *frameParser) marker(f []byte) (uint64, bool) {
	if err := p.eth.DecodeFromBytes(f, gopacket.NilDecodeFeedback); err != nil || p.eth.EthernetType != markerType {
		return 0, false
	}
	b, ok := bytes.CutPrefix(p.eth.Payload, []byte(markerMagic))
	if !ok || len(b) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(b), true
}

// parseSynAck extracts a SYN-ACK from an Ethernet frame (see
// frameParser.synAck).
func parseSynAck(f []byte) (SynAck, bool) { return newFrameParser().synAck(f) }

// parseMarker returns the sequence number of a marker frame.
func parseMarker(f []byte) (uint64, bool) { return newFrameParser().marker(f) }

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a
}

// Sync markers: a frame of the IEEE "local experimental" EtherType that the
// lab sends out of the captured port itself. Packets reach tcpdump in order,
// so once a marker is read back everything before it has been read too.
const (
	markerType  layers.EthernetType = 0x88b5
	markerMagic                     = "tests/lab sync "
)

// markerSrc is the marker's source: locally administered, used by no host
// (so the bridge learns nothing that matters).
var markerSrc = net.HardwareAddr{0x02, 0x1a, 0xb0, 0xff, 0xff, 0xfe}

// markerFrame builds marker seq, to dst.
func markerFrame(dst net.HardwareAddr, seq uint64) []byte {
	buf := gopacket.NewSerializeBuffer()
	payload := binary.BigEndian.AppendUint64([]byte(markerMagic), seq)
	eth := &layers.Ethernet{DstMAC: dst, SrcMAC: markerSrc, EthernetType: markerType}
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, gopacket.Payload(payload)); err != nil {
		panic(err) // only a MAC that is not 6 bytes fails, and both are
	}
	return buf.Bytes()
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
