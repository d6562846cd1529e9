package core

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// A status receipt is the coordinator's signed acknowledgement of status
// reports. A node forgets a report only when a receipt signed by a pinned
// order key names it, so a relay that passes reports upward can delay them
// but cannot make a node drop one: it cannot forge a receipt, and a
// receipt names each report by a digest of its whole signed envelope.

// TypeReceipt is the payload type of a status receipt.
const TypeReceipt = "relaymesh/status-receipt/v1"

// ReceiptSchema is the receipt format version.
const ReceiptSchema = 1

// Receipt lists, per report the coordinator is done with, the report's
// digest (ReportDigest) and its outcome: AckApplied, AckDuplicate or
// AckRejected. Reports it could not store are not listed: their nodes
// send them again.
type Receipt struct {
	Schema  int            `json:"schema"`
	Entries []ReceiptEntry `json:"entries"`
}

// ReceiptEntry is one report's outcome.
type ReceiptEntry struct {
	Digest []byte `json:"digest"` // ReportDigest of the report
	Result string `json:"result"`
}

// ReportDigest is sha256 over a report envelope's type, key ID, payload and
// signature, each length-prefixed: any change to the report, its signature
// included, changes it, so a receipt for one report never covers another.
func ReportDigest(e *Envelope) []byte {
	h := sha256.New()
	for _, f := range [][]byte{[]byte(e.Type), []byte(e.KeyID), e.Payload, e.Sig} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return h.Sum(nil)
}

func (r *Receipt) validate() error {
	if r.Schema != ReceiptSchema {
		return fmt.Errorf("%w: schema %d: want %d", ErrBadReceipt, r.Schema, ReceiptSchema)
	}
	for i, e := range r.Entries {
		if len(e.Digest) != sha256.Size {
			return fmt.Errorf("%w: entry %d: digest of %d bytes, want %d", ErrBadReceipt, i, len(e.Digest), sha256.Size)
		}
		switch e.Result {
		case AckApplied, AckDuplicate, AckRejected:
		default:
			return fmt.Errorf("%w: entry %d: result %q", ErrBadReceipt, i, e.Result)
		}
	}
	return nil
}

// SignReceipt encodes and signs a receipt with the coordinator's order key.
func SignReceipt(r *Receipt, priv ed25519.PrivateKey) (*Envelope, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	b, err := encodeCanonical(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReceipt, err)
	}
	return Seal(TypeReceipt, b, priv), nil
}

// OpenReceipt checks a receipt envelope against the pinned keys and
// decodes it.
func OpenReceipt(e *Envelope, keys map[string]ed25519.PublicKey) (*Receipt, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no receipt", ErrBadReceipt)
	}
	pub, ok := keys[e.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: receipt signed by %s, which is not pinned on this node", ErrUnknownKey, short(e.KeyID))
	}
	b, err := e.Open(TypeReceipt, pub)
	if err != nil {
		return nil, err
	}
	var r Receipt
	if err := decodeCanonical(b, &r, "receipt"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadReceipt, err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// knownType reports whether typ is a payload type an Envelope may carry.
func knownType(typ string) bool {
	switch typ {
	case TypeOrder, TypeStatus, TypeReceipt, TypeScan, TypeMemberList:
		return true
	}
	return false
}
