package core

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Canonical encoding: JSON of a struct with fixed field order, no maps and no
// floats, compact, with no HTML escaping. Decoding accepts only bytes that
// re-encode to themselves, so one value has exactly one encoding and one CID
// or signature.

func encodeCanonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func decodeCanonical(data []byte, v any, what string) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: trailing data after JSON value", what)
	}
	again, err := encodeCanonical(v)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !bytes.Equal(again, data) {
		return fmt.Errorf("%s: %w", what, ErrNotCanonical)
	}
	return nil
}
