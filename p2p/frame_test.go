package p2p

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

type testMsg struct {
	Name string `json:"name"`
	N    int    `json:"n,omitempty"`
}

// frame builds a raw frame around body.
func frame(body string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(body))), body...)
}

var frameCases = []struct {
	name    string
	in      []byte
	max     int
	want    *testMsg
	wantErr error
	inErr   string // substring of the error
}{
	{name: "ok", in: frame(`{"name":"a","n":3}`), max: 64, want: &testMsg{Name: "a", N: 3}},
	{name: "oversize", in: frame(`{"name":"` + strings.Repeat("x", 100) + `"}`), max: 64,
		wantErr: ErrMsgTooLarge, inErr: "111 bytes, limit 64"},
	{name: "huge prefix", in: binary.AppendUvarint(nil, 1<<62), max: 64, wantErr: ErrMsgTooLarge},
	{name: "garbage", in: frame(`not json`), max: 64, wantErr: ErrBadMsg},
	{name: "unknown field", in: frame(`{"name":"a","evil":1}`), max: 64, wantErr: ErrBadMsg, inErr: "evil"},
	{name: "trailing value", in: frame(`{"name":"a"}{}`), max: 64, wantErr: ErrBadMsg},
	{name: "wrong type", in: frame(`{"name":5}`), max: 64, wantErr: ErrBadMsg},
	{name: "empty frame", in: []byte{0}, max: 64, wantErr: ErrBadMsg},
	{name: "short body", in: frame(`{"name":"a"}`)[:5], max: 64, wantErr: ErrBadMsg, inErr: "cut short"},
	{name: "short prefix", in: []byte{0x80}, max: 64, wantErr: ErrBadMsg},
	{name: "overlong prefix", in: bytes.Repeat([]byte{0xff}, 11), max: 64, wantErr: ErrBadMsg},
	{name: "no frame", in: nil, max: 64, wantErr: io.EOF},
	{name: "bad max", in: frame(`{}`), max: 0, wantErr: ErrBadConfig},
}

func TestReadMsg(t *testing.T) {
	t.Parallel()
	for _, tt := range frameCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got testMsg
			// OneByteReader: ReadMsg must cope with short reads.
			err := ReadMsg(iotest.OneByteReader(bytes.NewReader(tt.in)), tt.max, &got)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.inErr) {
					t.Fatalf("ReadMsg = %v, want %v containing %q", err, tt.wantErr, tt.inErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, *tt.want)
			}
		})
	}
}

func TestReadMsgLeavesFollowingBytes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteMsg(&buf, testMsg{Name: "hdr"}); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("RAW")
	var got testMsg
	// A plain io.Reader (not a ByteReader) must not be read past the frame.
	r := struct{ io.Reader }{&buf}
	if err := ReadMsg(r, 64, &got); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if got.Name != "hdr" || string(rest) != "RAW" {
		t.Fatalf("got %+v then %q", got, rest)
	}
}

func TestWriteMsgError(t *testing.T) {
	t.Parallel()
	if err := WriteMsg(io.Discard, func() {}); err == nil {
		t.Fatal("WriteMsg encoded a func")
	}
	boom := errors.New("boom")
	if err := WriteMsg(errWriter{boom}, 1); !errors.Is(err, boom) {
		t.Fatalf("WriteMsg = %v, want the writer's error wrapped", err)
	}
}

func FuzzReadMsg(f *testing.F) {
	for _, tt := range frameCases {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var got testMsg
		if err := ReadMsg(bytes.NewReader(in), 256, &got); err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteMsg(&buf, got); err != nil {
			t.Fatal(err)
		}
		var again testMsg
		if err := ReadMsg(&buf, 256, &again); err != nil || again != got {
			t.Fatalf("re-read %+v: %v, want %+v", again, err, got)
		}
	})
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }
