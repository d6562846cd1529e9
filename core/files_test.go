package core

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// onlyFiles fails unless dir holds exactly the given names (no temp files).
func onlyFiles(t testing.TB, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("directory holds %q, want %q", got, names)
	}
}

func TestPrivateKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "order.key")
	if err := WritePrivateKey(path, coordKey); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %#o, want 0600", st.Mode().Perm())
	}
	onlyFiles(t, dir, "order.key")
	got, err := ReadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(coordKey) {
		t.Error("read back another key")
	}

	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	err = WritePrivateKey(path, otherKey)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("overwriting a key: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("refused overwrite changed the key file")
	}
	onlyFiles(t, dir, "order.key")

	// Not even through a dangling symlink.
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), link); err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKey(link, otherKey); err == nil {
		t.Error("wrote a key over a symlink")
	}
}

func TestReadPrivateKeyRefuses(t *testing.T) {
	t.Parallel()
	good, err := x509.MarshalPKCS8PrivateKey(coordKey)
	if err != nil {
		t.Fatal(err)
	}
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: good})
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pubOf(coordKey))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		mode os.FileMode
		want error
		msg  []string
	}{
		{"0644", goodPEM, 0o644, ErrKeyPermissions, []string{"chmod 600", "0644"}},
		{"0640", goodPEM, 0o640, ErrKeyPermissions, []string{"chmod 600", "0640"}},
		{"0604", goodPEM, 0o604, ErrKeyPermissions, []string{"chmod 600"}},
		{"0601", goodPEM, 0o601, ErrKeyPermissions, []string{"chmod 600"}},
		{"0400 is fine", goodPEM, 0o400, nil, nil},
		{"garbage", []byte("this is not a key\n"), 0o600, ErrBadKeyFile, []string{"no PRIVATE KEY"}},
		{"empty", nil, 0o600, ErrBadKeyFile, nil},
		{"public key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600, ErrBadKeyFile, nil},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")}), 0o600, ErrBadKeyFile, nil},
		{"ECDSA key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600, ErrBadKeyFile, []string{"not an ed25519 key"}},
		{"larger than 1 MiB", append(bytes.Clone(goodPEM), bytes.Repeat([]byte("\n"), 1<<20)...), 0o600, ErrBadKeyFile, []string{"1 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "order.key")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			k, err := ReadPrivateKey(path)
			if tt.want == nil {
				if err != nil || !k.Equal(coordKey) {
					t.Fatalf("ReadPrivateKey = %v", err)
				}
				return
			}
			checkErr(t, err, tt.want, append([]string{path}, tt.msg...)...)
			if k != nil {
				t.Error("key returned with the error")
			}
		})
	}
	_, err = ReadPrivateKey(filepath.Join(t.TempDir(), "missing.key"))
	checkErr(t, err, fs.ErrNotExist)
}

func TestPublicKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "order.pub")
	if err := WritePublicKey(path, pubOf(coordKey)); err != nil {
		t.Fatal(err)
	}
	// Public keys may be overwritten (rotation) and are world-readable.
	if err := WritePublicKey(path, pubOf(otherKey)); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("public key file: %v %v", st.Mode(), err)
	}
	got, err := ReadPublicKey(path)
	if err != nil || !got.Equal(pubOf(otherKey)) {
		t.Fatalf("ReadPublicKey = %x, %v", got, err)
	}
	onlyFiles(t, dir, "order.pub")

	priv, err := x509.MarshalPKCS8PrivateKey(coordKey)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKIXPublicKey(ec.Public())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":       nil,
		"garbage":     []byte("-----BEGIN nonsense"),
		"private key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}),
		"bad DER":     pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{0x30, 0x00}}),
		"ECDSA":       pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}),
	} {
		_, err := ParsePublicKey(data)
		if err == nil {
			t.Errorf("%s: parsed", name)
			continue
		}
		checkErr(t, err, ErrBadKeyFile)
	}
	bad := filepath.Join(dir, "bad.pub")
	if err := os.WriteFile(bad, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadPublicKey(bad)
	checkErr(t, err, ErrBadKeyFile, bad)
}

func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for i, data := range [][]byte{[]byte("first"), []byte("second, longer"), nil} {
		perm := []os.FileMode{0o600, 0o644, 0o640}[i]
		if err := WriteFileAtomic(path, data, perm); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("write %d: read back %q, %v", i, got, err)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != perm {
			t.Errorf("write %d: mode %#o, want %#o", i, st.Mode().Perm(), perm)
		}
		onlyFiles(t, dir, "state.json")
	}

	// A failed write leaves the old state and no temp file behind.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(sub, []byte("over a directory"), 0o600); err == nil {
		t.Error("replaced a directory")
	}
	onlyFiles(t, dir, "state.json", "sub")
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), nil, 0o600); err == nil {
		t.Error("wrote into a missing directory")
	}
	onlyFiles(t, dir, "state.json", "sub")
}
