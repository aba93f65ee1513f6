package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// KeySize is the length in bytes of the gossip keys farm keygen makes: 32
// selects AES-256 in memberlist's encryption.
const KeySize = 32

// keySizes are the key lengths memberlist accepts: AES-128, -192 and -256.
var keySizes = []int{16, 24, KeySize}

// ReadKeyFile reads the gossip key from path: 16, 24 or 32 bytes (AES-128,
// -192 or -256; farm keygen makes 32), base64 (standard alphabet, padded),
// surrounding whitespace ignored. It reads the host, so Validate does not
// call it; the agent does at start, and CheckHost (farm check) does, adding
// a check of the file's permissions.
func ReadKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("gossip.key_file: not set (farm keygen makes a key)")
	}
	key, err := readKey(path)
	if err != nil {
		return nil, fmt.Errorf("gossip.key_file %s: %w", path, err)
	}
	return key, nil
}

// readKey is ReadKeyFile without the key's name in its errors.
func readKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("cannot read: %w (farm keygen makes a key)", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil, errors.New("empty (farm keygen makes a key)")
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %v (farm keygen makes one)", err)
	}
	if !slices.Contains(keySizes, len(key)) {
		return nil, fmt.Errorf("%d bytes after base64 decoding, not 16, 24 or 32 (farm keygen makes one)", len(key))
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
