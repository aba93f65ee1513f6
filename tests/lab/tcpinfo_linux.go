package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// TCPInfo reads TCP_INFO of a connection: Total_retrans right after a dial
// counts SYN retransmissions (a SYN nobody answered for a second), which is
// how load generators tell a gap in a farm's takeover from a slow answer.
func TCPInfo(c net.Conn) (*unix.TCPInfo, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("%T is not a TCP connection", c)
	}
	sc, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := sc.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, ierr
}

// GetWith is Get with the caller's client (keep-alive, a dial hook): one
// GET, the body trimmed (a node's name), any status but 200 an error.
func GetWith(ctx context.Context, c *http.Client, url string) (string, error) {
	return get(ctx, c, url)
}

// GetNew is one GET to url on a new TCP connection from src in namespace
// ns (a client that does not keep connections), with the SYN
// retransmissions of its connect (TCP_INFO right after the dial): a load
// generator's new-connection request, which counts both a failure and a
// SYN that waited a second for an answer.
func (l *Lab) GetNew(ctx context.Context, ns string, src netip.Addr, url string, timeout time.Duration) (body string, synRetrans uint32, err error) {
	base := l.DialContext(ns, src)
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy: nil,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := base(ctx, network, addr)
				if err == nil {
					if info, ierr := TCPInfo(conn); ierr == nil {
						synRetrans = info.Total_retrans
					}
				}
				return conn, err
			},
			DisableKeepAlives: true,
		},
	}
	defer c.CloseIdleConnections()
	body, err = get(ctx, c, url)
	return body, synRetrans, err
}
