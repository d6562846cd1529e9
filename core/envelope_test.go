package core

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestEnvelopeEncoding(t *testing.T) {
	t.Parallel()
	env, err := SignOrder(deployOrder(), coordKey)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeEnvelope(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, env) {
		t.Fatalf("DecodeEnvelope = %+v, want %+v", back, env)
	}
	for i := range len(enc) {
		_, err := DecodeEnvelope(enc[:i])
		checkErr(t, err, ErrBadEnvelope)
	}

	var fields map[string]json.RawMessage
	if err := json.Unmarshal(enc, &fields); err != nil {
		t.Fatal(err)
	}
	sig := string(fields["sig"])
	replace := func(old, new string) []byte {
		if !bytes.Contains(enc, []byte(old)) {
			t.Fatalf("encoding %s lacks %s", enc, old)
		}
		return bytes.Replace(enc, []byte(old), []byte(new), 1)
	}
	// The signature's base64 ends in "==": 64 bytes leave 4 spare bits in
	// its last character, which a lax decoder ignores.
	if !strings.HasSuffix(sig, `=="`) {
		t.Fatalf("signature %s: expected two padding characters", sig)
	}
	last := sig[len(sig)-4]
	laxSig := sig[:len(sig)-4] + string(last^1) + sig[len(sig)-3:]

	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"empty", nil, ""},
		{"null", []byte("null"), ""},
		{"empty object", []byte("{}"), ""},
		{"unknown type", replace(TypeOrder, "relaymesh/order/v9"), "relaymesh/order/v9"},
		{"upper-case key ID", replace(env.KeyID, strings.ToUpper(env.KeyID)), "key id"},
		{"short key ID", replace(env.KeyID, env.KeyID[:10]), "key id"},
		{"short signature", replace(sig, `"AAAA"`), "signature of 3 bytes"},
		{"no signature", replace(`,"sig":`+sig, ``), ""},
		{"empty payload", replace(string(fields["payload"]), `""`), "empty payload"},
		{"null payload", replace(string(fields["payload"]), `null`), ""},
		{"payload not base64", replace(string(fields["payload"]), `"!!!"`), ""},
		{"non-canonical base64 bits", replace(sig, laxSig), ""},
		{"unpadded base64", replace(sig, strings.TrimSuffix(sig, `=="`)+`"`), ""},
		{"unknown field", replace(`{"type"`, `{"extra":1,"type"`), ""},
		{"whitespace", replace(`,"key_id"`, `, "key_id"`), ""},
		{"trailing newline", append(bytes.Clone(enc), '\n'), ""},
		{"too big", bytes.Repeat([]byte(" "), MaxEnvelopeBytes+1), "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := DecodeEnvelope(tt.data)
			checkErr(t, err, ErrBadEnvelope, tt.msg)
			if e != nil {
				t.Errorf("refused envelope returned: %+v", e)
			}
		})
	}
}

func TestEnvelopeEncodeChecks(t *testing.T) {
	t.Parallel()
	good, err := SignOrder(deployOrder(), coordKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(e *Envelope){
		"type":    func(e *Envelope) { e.Type = "x" },
		"key ID":  func(e *Envelope) { e.KeyID = "zz" + e.KeyID[2:] },
		"sig":     func(e *Envelope) { e.Sig = e.Sig[1:] },
		"payload": func(e *Envelope) { e.Payload = nil },
	} {
		e := *good
		mutate(&e)
		if _, err := e.Encode(); err == nil {
			t.Errorf("bad %s: Encode accepted", name)
		} else {
			checkErr(t, err, ErrBadEnvelope)
		}
	}
}

// TestEnvelopesInMessages checks that envelopes inside wire messages are
// checked as they are decoded, and that a null one cannot crash a reader.
func TestEnvelopesInMessages(t *testing.T) {
	t.Parallel()
	env, err := SignOrder(deployOrder(), coordKey)
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(OrdersPush{Orders: []*Envelope{env}})
	if err != nil {
		t.Fatal(err)
	}
	var push OrdersPush
	if err := json.Unmarshal(good, &push); err != nil {
		t.Fatal(err)
	}
	if len(push.Orders) != 1 || !reflect.DeepEqual(push.Orders[0], env) {
		t.Fatalf("push = %+v", push)
	}

	bad := bytes.Replace(good, []byte(TypeOrder), []byte("relaymesh/evil"), 1)
	var push2 OrdersPush
	checkErr(t, json.Unmarshal(bad, &push2), ErrBadEnvelope)

	var batch StatusBatch
	if err := json.Unmarshal([]byte(`{"reports":[{"type":"relaymesh/status/v1"}]}`), &batch); err == nil {
		t.Error("StatusBatch with a bare envelope decoded")
	}

	// A null entry decodes to a nil envelope; everything that takes one
	// refuses it instead of panicking.
	var nulls OrdersPush
	if err := json.Unmarshal([]byte(`{"orders":[null]}`), &nulls); err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(t0, 0)
	_, err = v.Accept(nulls.Orders[0])
	checkErr(t, err, ErrBadEnvelope)
	_, err = v.Check(nulls.Orders[0])
	checkErr(t, err, ErrBadEnvelope)
	_, err = OpenOrder(nulls.Orders[0], pubOf(coordKey))
	checkErr(t, err, ErrBadEnvelope)
}
