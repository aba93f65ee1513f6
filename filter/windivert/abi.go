package windivert

import "encoding/binary"

// The WinDivert 2.2 ABI (include/windivert.h and the API documentation,
// https://reqrypt.org/windivert-doc.html), written out here because the
// binding calls WinDivert.dll without cgo. It is plain data, so its layout
// is tested on any system (abi_test.go).

// Layers (WINDIVERT_LAYER). The engine uses LayerNetwork: packets to and
// from this host, at the WFP inbound/outbound IP packet layers.
const (
	LayerNetwork        = 0
	LayerNetworkForward = 1
	LayerFlow           = 2
	LayerSocket         = 3
	LayerReflect        = 4
)

// Open flags (WINDIVERT_FLAG_*). The engine opens with none: packets are
// diverted (taken off the stack, not copied) and must be reinjected to go
// on, which is what makes a stalled or guarded handle drop.
const (
	FlagSniff     = 0x0001
	FlagDrop      = 0x0002
	FlagRecvOnly  = 0x0004
	FlagSendOnly  = 0x0008
	FlagNoInstall = 0x0010
	FlagFragments = 0x0020
)

// Parameters (WINDIVERT_PARAM) and their bounds.
const (
	ParamQueueLength  = 0 // packets; default 4096, 32..16384
	ParamQueueTime    = 1 // milliseconds; default 2000, 100..16000
	ParamQueueSize    = 2 // bytes; default 4 MiB, 65535..32 MiB
	ParamVersionMajor = 3 // read only
	ParamVersionMinor = 4 // read only

	QueueLengthMax = 16384
	QueueSizeMax   = 32 << 20
)

// Shutdown directions (WINDIVERT_SHUTDOWN). After ShutdownRecv the handle
// queues no new packet (matching packets then go on as if it did not
// exist) and a receive fails with ERROR_NO_DATA once the queue is empty.
const (
	ShutdownRecv = 0x1
	ShutdownSend = 0x2
	ShutdownBoth = 0x3
)

// Handle priorities (WINDIVERT_PRIORITY_HIGHEST/LOWEST). Packets go to
// higher priorities first; a packet a handle reinjects goes on to the
// handles of lower priority only.
const (
	PriorityHighest = 30000
	PriorityLowest  = -30000
)

// Batch and size limits: WINDIVERT_BATCH_MAX packets per WinDivertRecvEx
// or WinDivertSendEx, and WINDIVERT_MTU_MAX bytes per packet.
const (
	BatchMax = 0xff
	MTUMax   = 40 + 0xffff
)

// MaxFlowsLimit bounds Spec.MaxFlows: flow indexes are 32 bits wide, and
// 16M flows already take 1 GiB.
const MaxFlowsLimit = 1 << 24

// AddressSize is sizeof(WINDIVERT_ADDRESS).
const AddressSize = 80

// Address is WINDIVERT_ADDRESS, the "address" WinDivert returns with each
// packet and takes back with each reinjected one:
//
//	typedef struct {
//	    INT64  Timestamp;          // offset 0
//	    UINT32 Layer:8;            // offset 8, bits 0-7
//	    UINT32 Event:8;            //           bits 8-15
//	    UINT32 Sniffed:1;          //           bit 16
//	    UINT32 Outbound:1;         //           bit 17
//	    UINT32 Loopback:1;         //           bit 18
//	    UINT32 Impostor:1;         //           bit 19
//	    UINT32 IPv6:1;             //           bit 20
//	    UINT32 IPChecksum:1;       //           bit 21
//	    UINT32 TCPChecksum:1;      //           bit 22
//	    UINT32 UDPChecksum:1;      //           bit 23
//	    UINT32 Reserved1:8;        //           bits 24-31
//	    UINT32 Reserved2;          // offset 12
//	    union {                    // offset 16, 64 bytes
//	        WINDIVERT_DATA_NETWORK Network; // UINT32 IfIdx, SubIfIdx
//	        ... (flow, socket, reflect layers)
//	        UINT8 Reserved3[64];
//	    };
//	} WINDIVERT_ADDRESS;           // 80 bytes, 8-byte aligned
//
// Bit-fields are allocated from the least significant bit on both MSVC and
// MinGW for x86 and x64 (little endian), which is how the DLL was built.
// A reinjected packet's address must be the one received with it (only
// Outbound, Impostor, the checksum bits and the interface indexes are read
// by WinDivertSend); the engine changes at most the interface indexes.
type Address struct {
	Timestamp int64
	bits      uint32
	reserved2 uint32
	union     [64]byte
}

// Bit positions in Address.bits.
const (
	bitSniffed     = 16
	bitOutbound    = 17
	bitLoopback    = 18
	bitImpostor    = 19
	bitIPv6        = 20
	bitIPChecksum  = 21
	bitTCPChecksum = 22
	bitUDPChecksum = 23
)

func (a *Address) bit(n uint) bool { return a.bits>>n&1 != 0 }

func (a *Address) setBit(n uint, v bool) {
	if v {
		a.bits |= 1 << n
	} else {
		a.bits &^= 1 << n
	}
}

// Layer is the handle's layer (Layer*).
func (a *Address) Layer() uint8 { return uint8(a.bits) }

// Event is the layer's event (0, WINDIVERT_EVENT_NETWORK_PACKET, here).
func (a *Address) Event() uint8 { return uint8(a.bits >> 8) }

// Sniffed reports a copied rather than diverted packet.
func (a *Address) Sniffed() bool { return a.bit(bitSniffed) }

// Outbound reports a packet leaving the host; it also says which way a
// reinjected packet goes.
func (a *Address) Outbound() bool { return a.bit(bitOutbound) }

// SetOutbound sets the direction of a packet to inject.
func (a *Address) SetOutbound(v bool) { a.setBit(bitOutbound, v) }

// Loopback reports a packet from this host to itself.
func (a *Address) Loopback() bool { return a.bit(bitLoopback) }

// Impostor reports a packet another driver injected.
func (a *Address) Impostor() bool { return a.bit(bitImpostor) }

// IPv6 reports an IPv6 packet.
func (a *Address) IPv6() bool { return a.bit(bitIPv6) }

// IPChecksum reports a valid IPv4 header checksum. For this and the two
// below, an unset bit on a reinjected packet makes WinDivert recompute
// that checksum.
func (a *Address) IPChecksum() bool { return a.bit(bitIPChecksum) }

// TCPChecksum reports a valid TCP checksum.
func (a *Address) TCPChecksum() bool { return a.bit(bitTCPChecksum) }

// UDPChecksum reports a valid UDP checksum.
func (a *Address) UDPChecksum() bool { return a.bit(bitUDPChecksum) }

// IfIdx is the interface index the packet arrived on (inbound); a packet
// reinjected inbound is indicated as arriving there.
func (a *Address) IfIdx() uint32 { return binary.LittleEndian.Uint32(a.union[0:4]) }

// SubIfIdx is the sub-interface index of IfIdx.
func (a *Address) SubIfIdx() uint32 { return binary.LittleEndian.Uint32(a.union[4:8]) }

// SetInterface sets the interface a reinjected inbound packet arrives on.
func (a *Address) SetInterface(ifIdx, subIfIdx uint32) {
	binary.LittleEndian.PutUint32(a.union[0:4], ifIdx)
	binary.LittleEndian.PutUint32(a.union[4:8], subIfIdx)
}
