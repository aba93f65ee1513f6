package member

import (
	"io"
	"log"
	"net"
	"strconv"
	"testing"
	"time"
)

// testHeard starts a transport on a loopback port the kernel picks; it is
// shut down when the test ends (a second Shutdown does nothing).
func testHeard(t *testing.T) *heard {
	t.Helper()
	h, err := newHeard("127.0.0.1", 0, log.New(io.Discard, "", 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Shutdown() })
	return h
}

// TestHeardShutdownUnderTraffic shuts the transport down while datagrams
// keep arriving and nobody reads what it passes on (memberlist stops
// reading when it shuts down): Shutdown waits for the listener, which must
// not be left blocked handing a packet over. A 64-node simulation hung
// there for minutes (when the transport wrapped memberlist's), and an agent
// stopping under gossip would too.
func TestHeardShutdownUnderTraffic(t *testing.T) {
	h := testHeard(t)
	port := h.port()
	c, err := net.Dial("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; i < 100000; i++ { // bounded: at most a few seconds
			select {
			case <-stop:
				return
			default:
			}
			_, _ = c.Write([]byte("a packet nobody reads"))
			if i%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the listener is blocked handing a packet over by now
	done := make(chan error, 1)
	go func() { done <- h.Shutdown() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown still waits for the transport's listener after 5 s")
	}
	close(stop)
	<-sent
}
