package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"

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
