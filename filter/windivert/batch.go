package windivert

import (
	"encoding/binary"
	"errors"
)

// errBadBatch means a received batch does not split into whole IP packets;
// the rest of the batch is dropped (never reinjected unread).
var errBadBatch = errors.New("windivert batch: a packet's IP length runs past the received bytes")

// packetLen returns the length of the IP packet at the start of b, from
// its header: WinDivertRecvEx packs a batch's packets back to back with no
// gap and no length prefix, so this is how the batch is split (what
// WinDivertHelperParsePacket's pNext does).
func packetLen(b []byte) (int, error) {
	if len(b) < 1 {
		return 0, errBadBatch
	}
	var n int
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return 0, errBadBatch
		}
		n = int(binary.BigEndian.Uint16(b[2:4]))
		if n < int(b[0]&0x0f)*4 || n < 20 {
			return 0, errBadBatch
		}
	case 6:
		if len(b) < 40 {
			return 0, errBadBatch
		}
		n = 40 + int(binary.BigEndian.Uint16(b[4:6]))
	default:
		return 0, errBadBatch
	}
	if n > len(b) {
		return 0, errBadBatch
	}
	return n, nil
}

// decideBatch runs decide over the n packets of one WinDivertRecvEx
// result (the first recvd bytes of buf, with addresses addrs[:n]) and
// moves the ones decide keeps to the front of the same buffers, ready for
// WinDivertSendEx: it returns their total length and count. Packets only
// ever move towards the start, so copy's memmove semantics make the
// compaction safe and no second buffer is needed; decide may change the
// address of a packet it keeps. A packet whose length does not fit ends
// the batch: it and the rest are dropped, and err says so.
func decideBatch(buf []byte, recvd int, addrs []Address, n int, decide func(pkt []byte, a *Address) bool) (sendLen, sendN int, err error) {
	off := 0
	for i := 0; i < n; i++ {
		l, perr := packetLen(buf[off:recvd])
		if perr != nil {
			return sendLen, sendN, perr
		}
		pkt := buf[off : off+l]
		if decide(pkt, &addrs[i]) {
			if off != sendLen {
				copy(buf[sendLen:], pkt)
			}
			if i != sendN {
				addrs[sendN] = addrs[i]
			}
			sendLen += l
			sendN++
		}
		off += l
	}
	return sendLen, sendN, nil
}
