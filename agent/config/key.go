package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// KeySize is the gossip key length in bytes: 32 selects AES-256 in
// memberlist's encryption.
const KeySize = 32

// ReadKeyFile reads the gossip key from path: KeySize bytes, base64 (standard
// alphabet, padded), surrounding whitespace ignored. It is called at start-up,
// not by Validate, because it reads the host.
func ReadKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("gossip.key_file: not set (farm keygen makes a key)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("gossip.key_file %s: cannot read: %w (farm keygen makes a key)", path, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, fmt.Errorf("gossip.key_file %s: empty (farm keygen makes a key)", path)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip.key_file %s: not base64: %v (farm keygen makes one)", path, err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("gossip.key_file %s: not %d bytes after base64 decoding (farm keygen makes one)", path, KeySize)
	}
	return key, nil
}

// NewKey returns a fresh random gossip key, base64, for `farm keygen`.
func NewKey() (string, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes for a gossip key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}
