package member

import (
	"bytes"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// The transport hands memberlist each datagram in a buffer of its own (one
// read buffer is reused underneath), notes who sent it, and carries TCP
// streams both ways; loopback only.
func TestHeardTransport(t *testing.T) {
	h := testHeard(t)
	var _ memberlist.NodeAwareTransport = h
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(h.port()))

	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := [][]byte{bytes.Repeat([]byte("a"), 300), []byte("bb"), bytes.Repeat([]byte("c"), 1400)}
	for _, b := range want {
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	var got []*memberlist.Packet
	for range want {
		select {
		case p := <-h.PacketCh():
			got = append(got, p)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d of %d datagrams arrived", len(got), len(want))
		}
	}
	// Read all first: a reused buffer would show in the earlier packets.
	for i, p := range got {
		if !bytes.Equal(p.Buf, want[i]) {
			t.Errorf("datagram %d: %d bytes %.8q, want %d bytes %.8q", i, len(p.Buf), p.Buf, len(want[i]), want[i])
		}
		if cap(p.Buf) > 2*len(want[i])+64 {
			t.Errorf("datagram %d: buffer of %d bytes for %d", i, cap(p.Buf), len(p.Buf))
		}
		if p.From.String() != c.LocalAddr().String() {
			t.Errorf("datagram %d from %v, want %v", i, p.From, c.LocalAddr())
		}
	}
	if last := h.take([]string{c.LocalAddr().String()}); last[0].IsZero() {
		t.Error("the sender was not noted as heard")
	}

	// A stream dialled through the transport arrives on StreamCh.
	out, err := h.DialTimeout(addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	select {
	case in := <-h.StreamCh():
		_ = in.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no stream arrived")
	}

	// Writes go out of the listening socket, so peers see the gossip port.
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := h.WriteTo([]byte("ping"), peer.LocalAddr().String()); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, from, err := peer.ReadFromUDP(buf)
	if err != nil || string(buf[:n]) != "ping" || from.Port != h.port() {
		t.Errorf("peer read %q from %v (%v), want \"ping\" from port %d", buf[:n], from, err, h.port())
	}
}

func TestHeardAdvertise(t *testing.T) {
	h := testHeard(t)
	for _, c := range []struct {
		ip     string
		port   int
		wantIP string
		want   int
	}{
		{"10.0.0.7", 7000, "10.0.0.7", 7000},  // given: as given
		{"", 0, "127.0.0.1", h.port()},        // none: the bound address and port
		{"0.0.0.0", 0, "127.0.0.1", h.port()}, // unspecified counts as none
		{"fd00::1", 7946, "fd00::1", 7946},
	} {
		ip, port, err := h.FinalAdvertiseAddr(c.ip, c.port)
		if err != nil || ip.String() != c.wantIP || port != c.want {
			t.Errorf("FinalAdvertiseAddr(%q, %d) = %v, %d, %v; want %s, %d", c.ip, c.port, ip, port, err, c.wantIP, c.want)
		}
	}
	if _, _, err := h.FinalAdvertiseAddr("not-an-ip", 1); err == nil {
		t.Error("a malformed advertise address was accepted")
	}
}
