package core

import (
	"bytes"
	"testing"
)

// checkRefusedFromNetwork checks that decoding raw, the canonical encoding
// of an invalid value, failed with want. encoding/json writes invalid UTF-8
// as U+FFFD: Go 1.26 as the escape \ufffd (which then decodes as not
// canonical), Go 1.27 as the rune itself, which makes raw a different, valid
// value. The invalid value still never comes off the wire, which
// TestDecodeRefusesRawInvalidUTF8 checks byte by byte.
func checkRefusedFromNetwork(t *testing.T, raw []byte, decodeErr, want error) {
	t.Helper()
	if decodeErr == nil && bytes.Contains(raw, []byte("\uFFFD")) {
		return
	}
	checkErr(t, decodeErr, want)
}

// Invalid UTF-8 put on the wire by hand is refused whatever Go built us.
func TestDecodeRefusesRawInvalidUTF8(t *testing.T) {
	t.Parallel()
	o := deployOrder()
	raw, err := encodeCanonical(o)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(raw, []byte(`"targets":["`), []byte("\"targets\":[\"\xff"), 1)
	if bytes.Equal(bad, raw) {
		t.Fatalf("no targets in %s", raw)
	}
	if _, err := DecodeOrder(bad); err == nil {
		t.Errorf("order with a raw 0xff byte in a target was accepted")
	}

	s := nodeStatus()
	raw, err = encodeCanonical(s)
	if err != nil {
		t.Fatal(err)
	}
	bad = bytes.Replace(raw, []byte(`"node":"`), []byte("\"node\":\"\xed\xa0\x80"), 1)
	if bytes.Equal(bad, raw) {
		t.Fatalf("no node in %s", raw)
	}
	if _, err := DecodeStatus(bad); err == nil {
		t.Errorf("status with a UTF-16 surrogate in its node was accepted")
	}
}
