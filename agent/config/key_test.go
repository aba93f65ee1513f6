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
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	tests := []struct {
		name, path, want string // want "" = ok
	}{
		{"as farm keygen writes it", write("ok", key+"\n"), ""},
		{"surrounded by whitespace", write("ws", "\n  "+key+" \r\n\t"), ""},
		{"16 bytes", write("short", short+"\n"), "gossip.key_file " + filepath.Join(dir, "short") + ": not 32 bytes after base64 decoding (farm keygen makes one)"},
		{"not base64", write("bad", "not-a-key!\n"), "gossip.key_file " + filepath.Join(dir, "bad") + ": not base64"},
		{"empty", write("empty", " \n"), "gossip.key_file " + filepath.Join(dir, "empty") + ": empty"},
		{"missing", filepath.Join(dir, "missing"), "gossip.key_file " + filepath.Join(dir, "missing") + ": cannot read: "},
		{"not set", "", "gossip.key_file: not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadKeyFile(tt.path)
			checkErr(t, err, tt.want)
			if err != nil {
				return
			}
			if want, _ := base64.StdEncoding.DecodeString(key); string(got) != string(want) {
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
