package core

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestReceiptCoversExactlyTheSignedReport(t *testing.T) {
	t.Parallel()
	coord, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	report := Seal(TypeStatus, []byte(`{"x":1}`), other)
	forged := *report
	forged.Sig = bytes.Clone(report.Sig)
	forged.Sig[0] ^= 1
	if bytes.Equal(ReportDigest(report), ReportDigest(&forged)) {
		t.Fatal("a report with another signature has the same digest")
	}
	env, err := SignReceipt(&Receipt{Schema: ReceiptSchema, Entries: []ReceiptEntry{{Digest: ReportDigest(report), Result: AckApplied}}}, coord)
	if err != nil {
		t.Fatal(err)
	}
	pinned := PinnedKeys(coord.Public().(ed25519.PublicKey))
	r, err := OpenReceipt(env, pinned)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 1 || !bytes.Equal(r.Entries[0].Digest, ReportDigest(report)) {
		t.Fatalf("receipt %+v", r)
	}
	// Signed by a key the node did not pin (a relay's own).
	bad, err := SignReceipt(r, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenReceipt(bad, pinned); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("receipt signed by an unpinned key: err %v, want ErrUnknownKey", err)
	}
	// Altered after signing.
	env.Payload = bytes.Replace(env.Payload, []byte(AckApplied), []byte(AckRejected), 1)
	if _, err := OpenReceipt(env, pinned); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered receipt: err %v, want ErrBadSignature", err)
	}
	if _, err := SignReceipt(&Receipt{Schema: ReceiptSchema, Entries: []ReceiptEntry{{Digest: []byte{1}, Result: AckApplied}}}, coord); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("short digest: err %v, want ErrBadReceipt", err)
	}
}
