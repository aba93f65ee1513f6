// Package lab builds a small web farm on one machine out of Linux network
// namespaces, so end-to-end tests and `make demo` can run real agents, a real
// web server and a real client against a real learning bridge.
//
// The topology is a switch namespace holding a Linux bridge with default
// settings (MAC learning on, like a real switch), N node namespaces (web1..webN)
// and one client namespace, each attached to the bridge by a veth pair whose
// inner end is eth0. Addresses live only inside the namespaces; nothing is
// added to the root namespace, so several labs can run side by side.
//
// Everything the lab creates is named after its ID (a prefix plus four random
// hex digits) and recorded under RunBase/ID, so a crashed run can be removed
// later with CleanupPrefix. The lab only ever kills processes it started,
// by the PIDs it recorded.
//
// The package is Linux-only apart from its pure parts (address plan, config
// and nginx rendering, result and capture parsing), which build everywhere.
package lab
