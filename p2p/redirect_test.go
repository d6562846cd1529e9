package p2p

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/relaymesh/relaymesh/core"
)

func TestFragmentRedirect(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 70<<10)
	c := core.FragmentCID(data)
	k1, _ := GenerateIdentity()
	k2, _ := GenerateIdentity()
	h1, _ := peer.IDFromPrivateKey(k1)
	h2, _ := peer.IDFromPrivateKey(k2)
	addr := ma.StringCast("/ip4/127.0.0.1/tcp/4001")
	var (
		mu     sync.Mutex
		asked  []peer.ID
		served []cid.Cid
	)
	server, client := fragPair(t, FragmentServerConfig{
		Source: newMemSource(data),
		Redirect: func(from peer.ID, got cid.Cid) []peer.AddrInfo {
			mu.Lock()
			asked = append(asked, from)
			mu.Unlock()
			return []peer.AddrInfo{{ID: h1, Addrs: []ma.Multiaddr{addr}}, {ID: h2}}
		},
		Served: func(to peer.ID, got cid.Cid) {
			mu.Lock()
			served = append(served, got)
			mu.Unlock()
		},
	})

	_, err := FetchFragment(testCtx(t), client, server.ID(), c, 1<<20, WithRedirect())
	var rd *RedirectError
	if !errors.As(err, &rd) {
		t.Fatalf("FetchFragment = %v, want a *RedirectError", err)
	}
	if rd.From != server.ID() || len(rd.Peers) != 2 || rd.Peers[0].ID != h1 || !rd.Peers[0].Addrs[0].Equal(addr) || rd.Peers[1].ID != h2 {
		t.Fatalf("redirect = %+v", rd)
	}
	got, err := FetchFragment(testCtx(t), client, server.ID(), c, 1<<20)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("FetchFragment without redirects = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 1 || asked[0] != client.ID() {
		t.Fatalf("Redirect asked for %v, want once for the client (not for the request without redirects)", asked)
	}
	if len(served) != 1 || !served[0].Equals(c) {
		t.Fatalf("Served told of %v, want the one fragment sent", served)
	}
}

func TestFragmentRedirectGarbage(t *testing.T) {
	t.Parallel()
	k, _ := GenerateIdentity()
	other, _ := peer.IDFromPrivateKey(k)
	many := make([]fragPeer, MaxRedirect+1)
	for i := range many {
		many[i] = fragPeer{ID: other.String()}
	}
	for name, hdr := range map[string]fragHeader{
		"bad peer ID":     {Redirect: []fragPeer{{ID: "not-a-peer"}}},
		"too many peers":  {Redirect: many},
		"bad address":     {Redirect: []fragPeer{{ID: other.String(), Addrs: []string{"/nonsense"}}}},
		"found and moved": {Found: true, Size: 1, Redirect: []fragPeer{{ID: other.String()}}},
		"too many addrs":  {Redirect: []fragPeer{{ID: other.String(), Addrs: []string{"/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/2", "/ip4/1.2.3.4/tcp/3", "/ip4/1.2.3.4/tcp/4", "/ip4/1.2.3.4/tcp/5"}}}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			server, client := newTestHost(t, nil), newTestHost(t, nil)
			server.SetStreamHandler(FragmentProtocolRedirect, func(s network.Stream) {
				var req fragRequest
				_ = ReadMsg(s, maxFragRequest, &req)
				_ = WriteMsg(s, hdr)
				_ = s.Close()
			})
			connect(t, client, server)
			_, err := FetchFragment(testCtx(t), client, server.ID(), core.FragmentCID([]byte("x")), 1<<20, WithRedirect())
			if !errors.Is(err, ErrBadMsg) {
				t.Fatalf("FetchFragment = %v, want ErrBadMsg", err)
			}
		})
	}
}

func TestFragmentRedirectNeedsVersion11(t *testing.T) {
	t.Parallel()
	data := randomBytes(t, 1000)
	c := core.FragmentCID(data)
	k, _ := GenerateIdentity()
	other, _ := peer.IDFromPrivateKey(k)

	// A server that knows only 1.0.0 still serves a client that would
	// follow redirects.
	old, client := newTestHost(t, nil), newTestHost(t, nil)
	old.SetStreamHandler(FragmentProtocol, func(s network.Stream) {
		var req fragRequest
		if err := ReadMsg(s, maxFragRequest, &req); err != nil || req.FollowRedirects {
			_ = s.Reset()
			return
		}
		_ = WriteMsg(s, fragHeader{Found: true, Size: int64(len(data))})
		_, _ = s.Write(data)
		_ = s.Close()
	})
	connect(t, client, old)
	if got, err := FetchFragment(testCtx(t), client, old.ID(), c, 1<<20, WithRedirect()); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch from a 1.0.0 server = %v", err)
	}

	// A redirect the client did not ask for is refused.
	liar, client2 := newTestHost(t, nil), newTestHost(t, nil)
	liar.SetStreamHandler(FragmentProtocol, func(s network.Stream) {
		var req fragRequest
		_ = ReadMsg(s, maxFragRequest, &req)
		_ = WriteMsg(s, fragHeader{Redirect: []fragPeer{{ID: other.String()}}})
		_ = s.Close()
	})
	connect(t, client2, liar)
	if _, err := FetchFragment(testCtx(t), client2, liar.ID(), c, 1<<20); !errors.Is(err, ErrBadMsg) {
		t.Fatalf("unasked redirect: %v, want ErrBadMsg", err)
	}

	// Asking to follow redirects over 1.0.0 gets an error, not a redirect.
	server, client3 := fragPair(t, FragmentServerConfig{Source: newMemSource(data),
		Redirect: func(peer.ID, cid.Cid) []peer.AddrInfo { return []peer.AddrInfo{{ID: other}} }})
	s, err := client3.NewStream(testCtx(t), server.ID(), FragmentProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMsg(s, fragRequest{CID: c.String(), FollowRedirects: true}); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	var hdr fragHeader
	if err := ReadMsg(s, maxFragHeader, &hdr); err != nil {
		t.Fatal(err)
	}
	if hdr.Error == "" || len(hdr.Redirect) != 0 {
		t.Fatalf("header %+v: want an error and no redirect", hdr)
	}
}
