package config

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	key, err := NewKey()
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sized := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) + "\n" }
	tests := []struct {
		name, path, want string // want "" = ok
		size             int    // of the key read; 0 = the key from NewKey
	}{
		{name: "as farm keygen writes it", path: write("ok", key+"\n")},
		{name: "surrounded by whitespace", path: write("ws", "\n  "+key+" \r\n\t")},
		{name: "16 bytes (AES-128)", path: write("16", sized(16)), size: 16},
		{name: "24 bytes (AES-192)", path: write("24", sized(24)), size: 24},
		{name: "15 bytes", path: write("15", sized(15)), want: "gossip.key_file " + filepath.Join(dir, "15") + ": 15 bytes after base64 decoding, not 16, 24 or 32 (farm keygen makes one)"},
		{name: "33 bytes", path: write("33", sized(33)), want: "33 bytes after base64 decoding, not 16, 24 or 32"},
		{name: "64 bytes", path: write("64", sized(64)), want: "64 bytes after base64 decoding"},
		{name: "not base64", path: write("bad", "not-a-key!\n"), want: "gossip.key_file " + filepath.Join(dir, "bad") + ": not base64"},
		{name: "empty", path: write("empty", " \n"), want: "gossip.key_file " + filepath.Join(dir, "empty") + ": empty"},
		{name: "missing", path: filepath.Join(dir, "missing"), want: "gossip.key_file " + filepath.Join(dir, "missing") + ": cannot read: "},
		{name: "not set", want: "gossip.key_file: not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadKeyFile(tt.path)
			checkErr(t, err, tt.want)
			if err != nil {
				return
			}
			want, _ := base64.StdEncoding.DecodeString(key)
			if tt.size != 0 {
				want = make([]byte, tt.size)
			}
			if string(got) != string(want) {
				t.Errorf("ReadKeyFile = %x, want %x", got, want)
			}
		})
	}
}

func TestNewKey(t *testing.T) {
	a, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("two keys are equal")
	}
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil || len(raw) != KeySize || strings.TrimSpace(a) != a {
		t.Errorf("NewKey() = %q: want base64 of %d bytes (got %d, %v)", a, KeySize, len(raw), err)
	}
}
