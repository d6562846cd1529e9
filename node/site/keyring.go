package site

import (
	"bytes"
	"fmt"
	"slices"
)

// SetKeyring makes keys (primary first) the membership's gossip keyring
// while it runs: it adds the keys it lacks, makes keys[0] the primary, and
// removes the others (memberlist's AddKey, UseKey, RemoveKey), so a key
// rotation never stops the pool.
func (m *Membership) SetKeyring(keys [][]byte) error {
	if m.keyring == nil {
		return fmt.Errorf("%w: gossip is not encrypted: no keyring to set", ErrBadConfig)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: empty gossip keyring", ErrBadConfig)
	}
	for i, k := range keys {
		if len(k) != keySize {
			return fmt.Errorf("%w: gossip key %d of %d bytes: must be %d", ErrBadConfig, i, len(k), keySize)
		}
		if err := m.keyring.AddKey(slices.Clone(k)); err != nil {
			return fmt.Errorf("site: add gossip key %d: %w", i, err)
		}
	}
	if err := m.keyring.UseKey(keys[0]); err != nil {
		return fmt.Errorf("site: use gossip key: %w", err)
	}
	for _, k := range m.keyring.GetKeys() {
		if !slices.ContainsFunc(keys, func(w []byte) bool { return bytes.Equal(w, k) }) {
			if err := m.keyring.RemoveKey(k); err != nil {
				return fmt.Errorf("site: remove gossip key: %w", err)
			}
		}
	}
	return nil
}

// Keyring returns the gossip keys in use, primary first; nil when gossip
// is not encrypted.
func (m *Membership) Keyring() [][]byte {
	if m.keyring == nil {
		return nil
	}
	return m.keyring.GetKeys()
}
