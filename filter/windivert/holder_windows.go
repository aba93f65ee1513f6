//go:build windows && amd64

package windivert

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The crash guard. WinDivert stops filtering when the last handle to a
// WinDivert handle's file object closes (the driver's file cleanup), and a
// dying process's handles all close, so a crashed agent would let the TCP
// stack answer every SYN to the VIP and reset every other node's flows.
// A duplicate of the handle in another process keeps the file object, and
// so the filter, alive: packets go on being diverted into the handle's
// queue, nobody reads or reinjects them, and the driver drops them when
// the queue is full or they are older than the queue time. That is the
// fail-closed behaviour of an NFQUEUE without bypass on Linux.
//
// The holder is a copy of farm.exe created suspended: it never runs a
// single instruction of its own, so it cannot crash or exit by itself,
// and it costs a process object and a few pages. The engine duplicates
// its handle into the holder's handle table and records the holder's PID,
// creation time and handle value in GuardFile; the next engine duplicates
// the handle back (adopting the filter, with its queued packets, without a
// gap) and scripts/iis/guard.ps1 release ends the holder when no agent
// will come back. A clean Run ends it itself.

// holderArg is the holder's command line argument. The process never runs,
// so it only names the process for people reading a process list.
const holderArg = "windivert-crash-guard-do-not-resume"

// stillActive is GetExitCodeProcess's answer for a running process.
const stillActive = 259

// holder is a running holder process.
type holder struct {
	proc    windows.Handle
	pid     uint32
	created uint64
	remote  windows.Handle // the WinDivert handle's value in the holder
}

// startHolder creates a holder and duplicates h into it. The holder leaves
// the agent's job object if it may (a service manager that kills the job
// would otherwise kill the guard with the agent).
func startHolder(h windows.Handle) (*holder, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	exe16, err := windows.UTF16PtrFromString(exe)
	if err != nil {
		return nil, err
	}
	cmd16, err := windows.UTF16PtrFromString(windows.ComposeCommandLine([]string{exe, holderArg}))
	if err != nil {
		return nil, err
	}
	si := &windows.StartupInfo{Cb: uint32(unsafe.Sizeof(windows.StartupInfo{}))}
	pi := &windows.ProcessInformation{}
	flags := uint32(windows.CREATE_SUSPENDED | windows.CREATE_NO_WINDOW | windows.CREATE_NEW_PROCESS_GROUP)
	err = windows.CreateProcess(exe16, cmd16, nil, nil, false, flags|windows.CREATE_BREAKAWAY_FROM_JOB, nil, nil, si, pi)
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) { // in a job that forbids breaking away
		err = windows.CreateProcess(exe16, cmd16, nil, nil, false, flags, nil, nil, si, pi)
	}
	if err != nil {
		return nil, fmt.Errorf("create the crash guard process: %w", err)
	}
	windows.CloseHandle(pi.Thread)
	hd := &holder{proc: pi.Process, pid: pi.ProcessId}
	var created, exited, kernel, user windows.Filetime
	if err := windows.GetProcessTimes(pi.Process, &created, &exited, &kernel, &user); err != nil {
		hd.stop()
		return nil, fmt.Errorf("crash guard process: %w", err)
	}
	hd.created = uint64(created.HighDateTime)<<32 | uint64(created.LowDateTime)
	if err := windows.DuplicateHandle(windows.CurrentProcess(), h, pi.Process, &hd.remote, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		hd.stop()
		return nil, fmt.Errorf("give the WinDivert handle to the crash guard process: %w", err)
	}
	return hd, nil
}

// findHolder opens the holder a record names, if it still runs, and
// duplicates its WinDivert handle into this process. No holder (it ended,
// or its PID now belongs to another process) is (nil, 0, nil).
func findHolder(r *guardRecord) (*holder, windows.Handle, error) {
	p, err := windows.OpenProcess(windows.PROCESS_DUP_HANDLE|windows.PROCESS_TERMINATE|
		windows.PROCESS_QUERY_LIMITED_INFORMATION|windows.SYNCHRONIZE, false, r.PID)
	if err != nil {
		return nil, 0, nil // gone (ERROR_INVALID_PARAMETER) or not ours to open
	}
	hd := &holder{proc: p, pid: r.PID, remote: windows.Handle(r.Handle)}
	var created, exited, kernel, user windows.Filetime
	var code uint32
	if windows.GetProcessTimes(p, &created, &exited, &kernel, &user) != nil ||
		uint64(created.HighDateTime)<<32|uint64(created.LowDateTime) != r.Created ||
		windows.GetExitCodeProcess(p, &code) != nil || code != stillActive {
		windows.CloseHandle(p)
		return nil, 0, nil
	}
	hd.created = r.Created
	var local windows.Handle
	if err := windows.DuplicateHandle(p, hd.remote, windows.CurrentProcess(), &local, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return hd, 0, fmt.Errorf("take the WinDivert handle back from the crash guard process %d: %w", r.PID, err)
	}
	return hd, local, nil
}

// stop ends the holder, closing its handle: when it was the last handle to
// the WinDivert file object, the driver removes the filter and reinjects
// what is still queued (the engine drains the queue first).
func (hd *holder) stop() error {
	if hd == nil || hd.proc == 0 {
		return nil
	}
	err := windows.TerminateProcess(hd.proc, 1)
	if err == nil {
		_, err = windows.WaitForSingleObject(hd.proc, 5000)
	}
	windows.CloseHandle(hd.proc)
	hd.proc = 0
	if err != nil {
		return fmt.Errorf("end the crash guard process %d: %w", hd.pid, err)
	}
	return nil
}

// release closes this process's handle to the holder and leaves it
// running, holding the filter (the engine failed to remove the VIPs and
// must not open the node).
func (hd *holder) release() {
	if hd != nil && hd.proc != 0 {
		windows.CloseHandle(hd.proc)
		hd.proc = 0
	}
}
