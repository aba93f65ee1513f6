package windivert

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/webfarm/farm/filter"
)

// A restarted engine has an empty flow table, but the connections this
// node accepted before a crash are still in the local TCP stack, which
// only ever saw this node's flows: the TCP table is the conntrack Windows
// does not have. Seeding the flow table from it at start lets those
// connections carry on after an agent crash and restart, as established
// flows do on Linux. (UDP has no such table; a UDP flow is decided by its
// bucket again.)

// MIB_TCP_STATE values (tcpmib.h).
const (
	tcpStateSynRcvd   = 4
	tcpStateEstab     = 5
	tcpStateFinWait1  = 6
	tcpStateFinWait2  = 7
	tcpStateCloseWait = 8
	tcpStateClosing   = 9
	tcpStateLastAck   = 10
)

// Row sizes of GetExtendedTcpTable with TCP_TABLE_OWNER_PID_*: a DWORD
// count, then rows of MIB_TCPROW_OWNER_PID (six DWORDs: state, local
// address, local port, remote address, remote port, pid) or of
// MIB_TCP6ROW_OWNER_PID (local address[16], local scope id, local port,
// remote address[16], remote scope id, remote port, state, pid). Addresses
// and ports are in network byte order; a port is the DWORD's first two
// bytes in memory (its upper half may hold garbage).
const (
	tcpRow4Len = 24
	tcpRow6Len = 56
)

var errTCPTable = errors.New("tcp table: shorter than its entry count says")

// seedClass returns the flow class of a local connection in MIB_TCP_STATE
// state, and false for states with no inbound traffic worth keeping
// (LISTEN, TIME_WAIT, ...).
func seedClass(state uint32) (Class, bool) {
	switch state {
	case tcpStateSynRcvd:
		return ClassSYN, true
	case tcpStateEstab, tcpStateFinWait1, tcpStateFinWait2:
		return ClassEstablished, true
	case tcpStateCloseWait, tcpStateClosing, tcpStateLastAck:
		return ClassClosing, true
	}
	return 0, false
}

// TCPSeed is a flow of this node found in the local TCP table.
type TCPSeed struct {
	Key   FlowKey
	Class Class
}

// parseTCPTable reads a GetExtendedTcpTable buffer (IPv6 rows when v6)
// and calls keep for each connection whose local address is one of vips
// and whose local port is in ports (the balanced TCP ports).
func parseTCPTable(b []byte, v6 bool, vips []netip.Addr, ports *filter.PortSet, keep func(TCPSeed)) error {
	if len(b) < 4 {
		return errTCPTable
	}
	n := int(binary.LittleEndian.Uint32(b[0:4]))
	rowLen := tcpRow4Len
	if v6 {
		rowLen = tcpRow6Len
	}
	if n < 0 || n > (len(b)-4)/rowLen {
		return errTCPTable
	}
	port := func(b []byte) uint16 { return binary.BigEndian.Uint16(b[0:2]) }
	for i := 0; i < n; i++ {
		row := b[4+i*rowLen : 4+(i+1)*rowLen]
		var state uint32
		var p filter.Packet
		p.Proto = filter.ProtoTCP
		if v6 {
			p.Dst = netip.AddrFrom16([16]byte(row[0:16]))
			p.DstPort = port(row[20:24])
			p.Src = netip.AddrFrom16([16]byte(row[24:40]))
			p.SrcPort = port(row[44:48])
			state = binary.LittleEndian.Uint32(row[48:52])
		} else {
			state = binary.LittleEndian.Uint32(row[0:4])
			p.Dst = netip.AddrFrom4([4]byte(row[4:8]))
			p.DstPort = port(row[8:12])
			p.Src = netip.AddrFrom4([4]byte(row[12:16]))
			p.SrcPort = port(row[16:20])
		}
		class, ok := seedClass(state)
		if !ok || !ports.Has(p.DstPort) || !isVIP(p.Dst, vips) {
			continue
		}
		keep(TCPSeed{Key: KeyOf(&p), Class: class})
	}
	return nil
}

func isVIP(a netip.Addr, vips []netip.Addr) bool {
	for _, v := range vips {
		if v == a {
			return true
		}
	}
	return false
}
