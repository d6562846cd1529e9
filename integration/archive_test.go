package integration

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"testing"
)

// writeTarGz writes a tar.gz holding files, stored without compression
// effort so random payloads keep their size.
func writeTarGz(t *testing.T, w io.Writer, files map[string][]byte) {
	t.Helper()
	gz, _ := gzip.NewWriterLevel(w, gzip.NoCompression)
	tw := tar.NewWriter(gz)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
}
