// Package scripts holds no Go code: it is the home of the ready-made [app]
// start and stop scripts (nginx, apache, systemd, iis) and of the agent's
// systemd unit. Its tests lint the scripts and run them against a real nginx,
// so a script that breaks is caught like any other code.
package scripts
