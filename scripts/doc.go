// Package scripts is the home of the ready-made [app] start and stop scripts
// (nginx, apache, systemd, iis) and of the agent's service files: the systemd
// unit and the SysV script, which it embeds so `farm service install` writes
// exactly the files shipped here (unit.go). Its tests lint the scripts and run
// them against a real nginx, so a script that breaks is caught like any other
// code.
package scripts
