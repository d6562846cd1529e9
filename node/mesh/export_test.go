package mesh

import (
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

var (
	farFuture = time.Now().Add(24 * time.Hour)
	discard   = slog.New(slog.DiscardHandler)
)

// nilHost is a host whose only use in HandleMessage is its ID.
type nilHost struct{ host.Host }

func (nilHost) ID() peer.ID { return "" }
