package checkers

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
)

// pidAlive reports whether the process pid still runs.
func pidAlive(pid int) error {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
	if err != nil {
		return fmt.Errorf("not running (%v)", err)
	}
	defer windows.CloseHandle(h)
	var code uint32
	if err := windows.GetExitCodeProcess(h, &code); err != nil {
		return fmt.Errorf("querying its state: %w", err)
	}
	const stillActive = 259
	if code != stillActive {
		return errors.New("exited")
	}
	return nil
}

// processByName checks that the Windows service name is running.
func processByName(_ context.Context, name string) error {
	scm, err := windows.OpenSCManager(nil, nil, windows.SC_MANAGER_CONNECT)
	if err != nil {
		return fmt.Errorf("service %q: opening the service manager: %w", name, err)
	}
	defer windows.CloseServiceHandle(scm)
	n, err := windows.UTF16PtrFromString(name)
	if err != nil {
		return fmt.Errorf("service %q: %w", name, err)
	}
	svc, err := windows.OpenService(scm, n, windows.SERVICE_QUERY_STATUS)
	if err != nil {
		return fmt.Errorf("service %q: %w (the process checker takes a service name on Windows)", name, err)
	}
	defer windows.CloseServiceHandle(svc)
	var st windows.SERVICE_STATUS
	if err := windows.QueryServiceStatus(svc, &st); err != nil {
		return fmt.Errorf("service %q: querying its status: %w", name, err)
	}
	if st.CurrentState != windows.SERVICE_RUNNING {
		return fmt.Errorf("service %q is not running (state %d)", name, st.CurrentState)
	}
	return nil
}
