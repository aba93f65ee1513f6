//go:build windows && amd64

package windivert

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/windows"
)

// DLLName is the WinDivert user-mode library, loaded at run time from the
// directory of the running executable (never linked: WinDivert is LGPLv3,
// and a DLL the operator can replace keeps it that way). WinDivert.dll
// installs and loads its driver, WinDivert64.sys, from its own directory
// on the first WinDivertOpen.
const DLLName = "WinDivert.dll"

// dll is the minimal binding over WinDivert.dll: open, batched receive and
// send, parameters, shutdown, close, and the filter compiler for error
// messages. The functions use the one x64 calling convention; every
// argument fits a register (UINT64 included), which is why the binding is
// amd64 only. Pointers passed in must point into the Go heap or outlive the
// call: windows.Proc.Call keeps them alive (go:uintptrescapes), and the
// engine passes fields of one heap-allocated state, so no call allocates.
type dll struct {
	path                                                      string
	open, recvEx, sendEx, shutdown, close, setParam, getParam *windows.Proc
	compile                                                   *windows.Proc
}

// loadDLL loads WinDivert.dll from beside the executable. The absolute
// path with LOAD_WITH_ALTERED_SEARCH_PATH makes Windows resolve the DLL's
// own imports from that directory too, and no other WinDivert.dll on the
// search path is picked up.
func loadDLL() (*dll, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the executable's directory: %w", err)
	}
	path := filepath.Join(filepath.Dir(exe), DLLName)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%s: %w (copy WinDivert.dll and WinDivert64.sys from the WinDivert 2.2 x64 release beside farm.exe)", path, err)
	}
	h, err := windows.LoadLibraryEx(path, 0, windows.LOAD_WITH_ALTERED_SEARCH_PATH)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w (it must be the x64 build of WinDivert 2.2)", path, err)
	}
	lib := &windows.DLL{Name: path, Handle: h}
	d := &dll{path: path}
	for _, p := range []struct {
		name string
		dst  **windows.Proc
	}{
		{"WinDivertOpen", &d.open},
		{"WinDivertRecvEx", &d.recvEx},
		{"WinDivertSendEx", &d.sendEx},
		{"WinDivertShutdown", &d.shutdown},
		{"WinDivertClose", &d.close},
		{"WinDivertSetParam", &d.setParam},
		{"WinDivertGetParam", &d.getParam},
		{"WinDivertHelperCompileFilter", &d.compile},
	} {
		proc, err := lib.FindProc(p.name)
		if err != nil {
			return nil, fmt.Errorf("%s has no %s: %w (use WinDivert 2.2; 1.x has another API)", path, p.name, err)
		}
		*p.dst = proc
	}
	return d, nil
}

// cstring returns s as a NUL-terminated byte string.
func cstring(s string) (*byte, error) { return windows.BytePtrFromString(s) }

// errno returns the call's last error, or a generic one when Windows set
// none.
func errno(err error) error {
	var e windows.Errno
	if errors.As(err, &e) && e != 0 {
		return e
	}
	return errors.New("failed without an error code")
}

// Open calls WinDivertOpen(filter, layer, priority, flags).
func (d *dll) Open(filter string, layer int, priority int16, flags uint64) (windows.Handle, error) {
	f, err := cstring(filter)
	if err != nil {
		return windows.InvalidHandle, err
	}
	r, _, e := d.open.Call(uintptr(unsafe.Pointer(f)), uintptr(uint32(layer)), uintptr(uint16(priority)), uintptr(flags))
	if windows.Handle(r) == windows.InvalidHandle {
		return windows.InvalidHandle, errno(e)
	}
	return windows.Handle(r), nil
}

// ioState holds what one receive or send passes by pointer: it is allocated once
// per packet loop, so the calls allocate nothing.
type ioState struct {
	n       uint32 // bytes received or sent
	addrLen uint32 // in: size of the address buffer; out: bytes of addresses received
}

// RecvEx calls WinDivertRecvEx(h, buf, len(buf), &st.n, 0, addrs,
// &st.addrLen, NULL): a blocking batched receive of up to len(addrs)
// packets, packed back to back into buf. It returns the bytes and the
// number of packets received.
func (d *dll) RecvEx(h windows.Handle, buf []byte, addrs []Address, st *ioState) (int, int, error) {
	st.n = 0
	st.addrLen = uint32(len(addrs)) * AddressSize
	r, _, e := d.recvEx.Call(uintptr(h), uintptr(unsafe.Pointer(&buf[0])), uintptr(uint32(len(buf))),
		uintptr(unsafe.Pointer(&st.n)), 0, uintptr(unsafe.Pointer(&addrs[0])), uintptr(unsafe.Pointer(&st.addrLen)), 0)
	if r == 0 {
		return 0, 0, errno(e)
	}
	return int(st.n), int(st.addrLen / AddressSize), nil
}

// SendEx calls WinDivertSendEx(h, buf, len(buf), &st.n, 0, addrs,
// len(addrs)*sizeof(WINDIVERT_ADDRESS), NULL): the packets packed in buf
// are reinjected each with its address. The driver reports the first
// packet that could not be injected as the call's error and goes on with
// the rest.
func (d *dll) SendEx(h windows.Handle, buf []byte, addrs []Address, st *ioState) (int, error) {
	st.n = 0
	r, _, e := d.sendEx.Call(uintptr(h), uintptr(unsafe.Pointer(&buf[0])), uintptr(uint32(len(buf))),
		uintptr(unsafe.Pointer(&st.n)), 0, uintptr(unsafe.Pointer(&addrs[0])), uintptr(uint32(len(addrs))*AddressSize), 0)
	if r == 0 {
		return int(st.n), errno(e)
	}
	return int(st.n), nil
}

// Shutdown calls WinDivertShutdown(h, how).
func (d *dll) Shutdown(h windows.Handle, how uint32) error {
	if r, _, e := d.shutdown.Call(uintptr(h), uintptr(how)); r == 0 {
		return errno(e)
	}
	return nil
}

// Close calls WinDivertClose(h). Packets still queued are reinjected by
// the driver when the last handle to the handle's file object closes, so
// the engine drains the queue first (see Run).
func (d *dll) Close(h windows.Handle) error {
	if r, _, e := d.close.Call(uintptr(h)); r == 0 {
		return errno(e)
	}
	return nil
}

// SetParam calls WinDivertSetParam(h, param, value).
func (d *dll) SetParam(h windows.Handle, param int, value uint64) error {
	if r, _, e := d.setParam.Call(uintptr(h), uintptr(uint32(param)), uintptr(value)); r == 0 {
		return errno(e)
	}
	return nil
}

// GetParam calls WinDivertGetParam(h, param, &value).
func (d *dll) GetParam(h windows.Handle, param int) (uint64, error) {
	v := new(uint64)
	if r, _, e := d.getParam.Call(uintptr(h), uintptr(uint32(param)), uintptr(unsafe.Pointer(v))); r == 0 {
		return 0, errno(e)
	}
	return *v, nil
}

// CheckFilter compiles filter for the network layer with
// WinDivertHelperCompileFilter and returns the compiler's message and
// position when it is refused, so a bad filter is reported precisely
// rather than as WinDivertOpen's ERROR_INVALID_PARAMETER.
func (d *dll) CheckFilter(filter string) error {
	f, err := cstring(filter)
	if err != nil {
		return err
	}
	var msg *byte
	var pos uint32
	r, _, _ := d.compile.Call(uintptr(unsafe.Pointer(f)), LayerNetwork, 0, 0,
		uintptr(unsafe.Pointer(&msg)), uintptr(unsafe.Pointer(&pos)))
	if r != 0 {
		return nil
	}
	text := "unknown error"
	if msg != nil {
		text = windows.BytePtrToString(msg) // a static string in the DLL
	}
	return fmt.Errorf("WinDivert refuses the filter at byte %d: %s: %q", pos, text, filter)
}

// openError explains a WinDivertOpen failure (the codes of the WinDivert
// documentation) and what to do about it.
func openError(err error) error {
	var e windows.Errno
	if !errors.As(err, &e) {
		return err
	}
	const eptNotRegistered windows.Errno = 1753
	hint := ""
	switch e {
	case windows.ERROR_FILE_NOT_FOUND:
		hint = "WinDivert64.sys is missing beside WinDivert.dll"
	case windows.ERROR_ACCESS_DENIED:
		hint = "WinDivert needs Administrator rights: run the agent as a service (LocalSystem) or elevated"
	case windows.ERROR_INVALID_PARAMETER:
		hint = "WinDivert refused the filter, layer, priority or flags"
	case windows.ERROR_INVALID_IMAGE_HASH:
		hint = "the driver's signature is not accepted: use the signed WinDivert64.sys of the official release"
	case windows.ERROR_DRIVER_FAILED_PRIOR_UNLOAD:
		hint = "another WinDivert version's driver is loaded: stop the programs using it, then sc stop WinDivert"
	case windows.ERROR_DRIVER_BLOCKED:
		hint = "the driver is blocked by security software, or the virtualization platform does not allow drivers"
	case eptNotRegistered:
		hint = "the Base Filtering Engine service (BFE) is disabled: Set-Service BFE -StartupType Automatic; Start-Service BFE"
	case windows.ERROR_SERVICE_DOES_NOT_EXIST:
		hint = "the WinDivert driver is not installed"
	}
	if hint == "" {
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}
