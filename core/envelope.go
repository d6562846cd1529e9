package core

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// Payload types. The type is part of what is signed, so an order's
// signature never verifies as a status report's, or the reverse.
const (
	TypeOrder  = "relaymesh/order/v1"
	TypeStatus = "relaymesh/status/v1"
)

// MaxEnvelopeBytes caps a signed envelope's encoding.
const MaxEnvelopeBytes = 16 << 20

// Envelope carries a signed payload: an order or a status report.
type Envelope struct {
	Type    string `json:"type"`
	KeyID   string `json:"key_id"`
	Payload []byte `json:"payload"`
	Sig     []byte `json:"sig"`
}

func signedBytes(typ string, payload []byte) []byte {
	msg := make([]byte, 0, len("relaymesh-signed\x00")+len(typ)+1+len(payload))
	msg = append(msg, "relaymesh-signed\x00"...)
	msg = append(msg, typ...)
	msg = append(msg, 0)
	return append(msg, payload...)
}

// KeyID returns the hex sha256 of an ed25519 public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])
}

// Seal signs payload as typ with priv.
func Seal(typ string, payload []byte, priv ed25519.PrivateKey) *Envelope {
	return &Envelope{
		Type:    typ,
		KeyID:   KeyID(priv.Public().(ed25519.PublicKey)),
		Payload: payload,
		Sig:     ed25519.Sign(priv, signedBytes(typ, payload)),
	}
}

// Open checks the envelope's type and signature against pub and returns the
// payload. It does not decode the payload.
func (e *Envelope) Open(typ string, pub ed25519.PublicKey) ([]byte, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: no envelope", ErrBadEnvelope)
	}
	if e.Type != typ {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrWrongType, e.Type, typ)
	}
	if len(pub) != ed25519.PublicKeySize || e.KeyID != KeyID(pub) {
		return nil, fmt.Errorf("%w: envelope key %s", ErrUnknownKey, short(e.KeyID))
	}
	if len(e.Sig) != ed25519.SignatureSize || !ed25519.Verify(pub, signedBytes(typ, e.Payload), e.Sig) {
		return nil, fmt.Errorf("%w: %s payload signed by key %s", ErrBadSignature, typ, short(e.KeyID))
	}
	return e.Payload, nil
}

// Encode returns the envelope's JSON encoding.
func (e *Envelope) Encode() ([]byte, error) {
	if err := e.check(); err != nil {
		return nil, err
	}
	return encodeCanonical(e)
}

func (e *Envelope) check() error {
	switch {
	case !knownType(e.Type):
		return fmt.Errorf("%w: type %q", ErrBadEnvelope, e.Type)
	case len(e.KeyID) != 64 || strings.Trim(e.KeyID, "0123456789abcdef") != "":
		return fmt.Errorf("%w: key id %q: want 64 hex digits", ErrBadEnvelope, short(e.KeyID))
	case len(e.Sig) != ed25519.SignatureSize:
		return fmt.Errorf("%w: signature of %d bytes, want %d", ErrBadEnvelope, len(e.Sig), ed25519.SignatureSize)
	case len(e.Payload) == 0:
		return fmt.Errorf("%w: empty payload", ErrBadEnvelope)
	}
	return nil
}

// DecodeEnvelope parses an envelope's encoding.
func DecodeEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadEnvelope, len(data), MaxEnvelopeBytes)
	}
	var e Envelope
	if err := decodeCanonical(data, &e, "envelope"); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	return &e, nil
}

// UnmarshalJSON keeps envelopes embedded in other JSON messages checked.
func (e *Envelope) UnmarshalJSON(b []byte) error {
	type plain Envelope
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*e = Envelope(p)
	return e.check()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// SignOrder encodes and signs an order.
func SignOrder(o *Order, priv ed25519.PrivateKey) (*Envelope, error) {
	o.KeyID = KeyID(priv.Public().(ed25519.PublicKey))
	b, err := o.Encode()
	if err != nil {
		return nil, err
	}
	return Seal(TypeOrder, b, priv), nil
}

// SignStatus encodes and signs a status report with the node's key.
func SignStatus(s *Status, priv ed25519.PrivateKey) (*Envelope, error) {
	b, err := s.Encode()
	if err != nil {
		return nil, err
	}
	return Seal(TypeStatus, b, priv), nil
}

// OpenOrder checks an order envelope's signature against pub and decodes it,
// without any of the node-side checks (expiry, replay, addressing); relays
// and the coordinator use it.
func OpenOrder(e *Envelope, pub ed25519.PublicKey) (*Order, error) {
	b, err := e.Open(TypeOrder, pub)
	if err != nil {
		return nil, err
	}
	o, err := DecodeOrder(b)
	if err != nil {
		return nil, err
	}
	if o.KeyID != e.KeyID {
		return nil, fmt.Errorf("%w: order names key %s, envelope %s", ErrBadOrder, short(o.KeyID), short(e.KeyID))
	}
	return o, nil
}

// OpenStatus checks a status envelope against the node's public key, decodes
// it and checks that the report names that node (nodeID).
func OpenStatus(e *Envelope, nodeID string, pub ed25519.PublicKey) (*Status, error) {
	b, err := e.Open(TypeStatus, pub)
	if err != nil {
		return nil, err
	}
	s, err := DecodeStatus(b)
	if err != nil {
		return nil, err
	}
	if s.NodeID != nodeID {
		return nil, fmt.Errorf("%w: report names node %s, signed by %s", ErrBadSignature, s.NodeID, nodeID)
	}
	return s, nil
}
