package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTwoHostsConnect(t *testing.T) {
	t.Parallel()
	a, b := newTestHost(t, nil), newTestHost(t, nil)
	connect(t, a, b)
	if got := len(a.Network().ConnsToPeer(b.ID())); got == 0 {
		t.Fatal("a has no connection to b")
	}
	for _, addr := range a.Addrs() {
		if !strings.HasPrefix(addr.String(), "/ip4/127.0.0.1/tcp/") {
			t.Errorf("listen addr %s: want only /ip4/127.0.0.1/tcp", addr)
		}
	}
}

func TestHostOnlySpeaksTCPNoiseYamux(t *testing.T) {
	t.Parallel()
	a, b := newTestHost(t, nil), newTestHost(t, nil)
	connect(t, a, b)
	conn := a.Network().ConnsToPeer(b.ID())[0]
	st := conn.ConnState()
	if st.Security != "/noise" || st.StreamMultiplexer != "/yamux/1.0.0" || st.Transport != "tcp" {
		t.Fatalf("conn state %+v: want tcp + /noise + /yamux/1.0.0", st)
	}
}

func TestDialOnlyHost(t *testing.T) {
	t.Parallel()
	a := newTestHost(t, func(c *HostConfig) { c.ListenAddrs = []string{} })
	if len(a.Addrs()) != 0 {
		t.Fatalf("dial-only host listens on %v", a.Addrs())
	}
	b := newTestHost(t, nil)
	connect(t, a, b)
}

func TestHostConfigValidate(t *testing.T) {
	t.Parallel()
	ed, _ := GenerateIdentity()
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  HostConfig
		want string // substring of the error; "" means valid
	}{
		{"default", DefaultHostConfig(ed), ""},
		{"no identity", HostConfig{}, "Identity is nil"},
		{"secp256k1 identity", HostConfig{Identity: secp}, "Identity is a Secp256k1 key"},
		{"bad listen addr", HostConfig{Identity: ed, ListenAddrs: []string{"127.0.0.1:4001"}}, "ListenAddrs[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want ErrBadConfig mentioning %q", err, tt.want)
			}
			if _, err := NewHost(tt.cfg); err == nil {
				t.Fatal("NewHost accepted an invalid config")
			}
		})
	}
}

func TestIdentityFileRoundTrip(t *testing.T) {
	t.Parallel()
	key, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "node.key")
	if err := WriteIdentity(path, key); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o, want 0600", st.Mode().Perm())
	}
	got, err := ReadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equals(key) {
		t.Fatal("read a different key")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the key (temp file left behind?)", len(entries))
	}
}

func TestReadIdentityRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key, _ := GenerateIdentity()

	loose := filepath.Join(dir, "loose.key")
	if err := WriteIdentity(loose, key); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o640); err != nil {
		t.Fatal(err)
	}
	_, err := ReadIdentity(loose)
	if !errors.Is(err, ErrKeyPermissions) || !strings.Contains(err.Error(), "0640") {
		t.Fatalf("ReadIdentity(0640) = %v, want ErrKeyPermissions naming the mode", err)
	}

	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIdentity(garbage); !errors.Is(err, ErrBadIdentity) {
		t.Fatalf("ReadIdentity(garbage) = %v, want ErrBadIdentity", err)
	}

	secp, _, _ := crypto.GenerateSecp256k1Key(rand.Reader)
	data, _ := crypto.MarshalPrivateKey(secp)
	other := filepath.Join(dir, "secp.key")
	if err := os.WriteFile(other, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIdentity(other); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("ReadIdentity(secp256k1) = %v, want ErrNotEd25519", err)
	}
	if err := WriteIdentity(filepath.Join(dir, "w.key"), secp); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("WriteIdentity(secp256k1) = %v, want ErrNotEd25519", err)
	}
}

func TestEd25519RawAndPeerPublicKey(t *testing.T) {
	t.Parallel()
	key, _ := GenerateIdentity()
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	priv := Ed25519Raw(key)
	if priv == nil {
		t.Fatal("Ed25519Raw returned nil for an ed25519 key")
	}
	pub, err := PeerPublicKey(id)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("deployment order 42")
	if !ed25519.Verify(pub, msg, ed25519.Sign(priv, msg)) {
		t.Fatal("signature by Ed25519Raw does not verify with PeerPublicKey")
	}

	secp, _, _ := crypto.GenerateSecp256k1Key(rand.Reader)
	if Ed25519Raw(secp) != nil {
		t.Fatal("Ed25519Raw accepted a secp256k1 key")
	}
	secpID, _ := peer.IDFromPrivateKey(secp)
	if _, err := PeerPublicKey(secpID); !errors.Is(err, ErrNotEd25519) {
		t.Fatalf("PeerPublicKey(secp256k1 ID) = %v, want ErrNotEd25519", err)
	}
	rsa, _, _ := crypto.GenerateRSAKeyPair(2048, rand.Reader)
	rsaID, _ := peer.IDFromPrivateKey(rsa)
	if _, err := PeerPublicKey(rsaID); err == nil {
		t.Fatal("PeerPublicKey accepted a hashed (RSA) peer ID")
	}
}

func TestParseAddrInfo(t *testing.T) {
	t.Parallel()
	h := newTestHost(t, nil)
	good := h.Addrs()[0].String() + "/p2p/" + h.ID().String()
	tests := []struct {
		in string
		ok bool
	}{
		{good, true},
		{"/p2p/" + h.ID().String(), false},
		{h.Addrs()[0].String(), false},
		{"127.0.0.1:4001", false},
		{"", false},
	}
	for _, tt := range tests {
		ai, err := ParseAddrInfo(tt.in)
		if tt.ok {
			if err != nil || ai.ID != h.ID() || len(ai.Addrs) != 1 {
				t.Errorf("ParseAddrInfo(%q) = %v, %v", tt.in, ai, err)
			}
			continue
		}
		if !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddrInfo(%q) = %v, want ErrBadAddr", tt.in, err)
		}
	}
	got := AddrInfo(h)
	if got.ID != h.ID() || len(got.Addrs) == 0 {
		t.Fatalf("AddrInfo = %v", got)
	}
}
