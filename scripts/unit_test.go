package scripts

import (
	"os"
	"strings"
	"testing"
)

// TestEmbeddedFilesAreTheShippedOnes: `farm service install` writes Unit and
// SysV through Render; with the default paths Render gives the files back
// byte for byte (agent/cmd/farm's TestInstallWritesTheShippedUnit compares
// what install writes with farm.service).
func TestEmbeddedFilesAreTheShippedOnes(t *testing.T) {
	for name, text := range map[string]string{"farm.service": Unit, "farm.init": SysV} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if text != string(b) {
			t.Errorf("the embedded %s differs from the file", name)
		}
		got, err := Render(text, DefaultBinary, DefaultConfig)
		if err != nil || got != text {
			t.Errorf("%s: Render with the default paths changed it (%v)", name, err)
		}
	}
}

func TestRender(t *testing.T) {
	got, err := Render(Unit, "/usr/bin/farm", "/srv/farm/node-1.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nExecStart=/usr/bin/farm agent --config /srv/farm/node-1.toml\n",
		"\nExecStartPre=-/usr/bin/farm cleanup\n",
		"\nConditionFileIsExecutable=/usr/bin/farm\n",
		// Comments keep the paths they explain.
		"\n#   install -m 755 bin/farm /usr/local/bin/farm\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered unit lacks %q", strings.TrimSpace(want))
		}
	}
	sysv, err := Render(SysV, "/usr/bin/farm", "/srv/farm.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sysv, "\nFARM=/usr/bin/farm\nCONFIG=/srv/farm.toml\n") {
		t.Error("rendered init script does not set FARM and CONFIG")
	}
	for _, bad := range []string{"relative/farm", "/opt/my farm/farm", "/opt/$x/farm", "/opt/100%/farm", `/opt/"q"/farm`, "/opt/a\\b"} {
		if _, err := Render(Unit, bad, DefaultConfig); err == nil {
			t.Errorf("binary path %q accepted", bad)
		}
		if _, err := Render(Unit, DefaultBinary, bad); err == nil {
			t.Errorf("config path %q accepted", bad)
		}
	}
}
