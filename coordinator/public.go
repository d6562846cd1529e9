package coordinator

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/relaymesh/relaymesh/internal/version"
)

// Health is the answer of GET /v1/health. Anyone who reaches the admin
// listener may ask (load balancers, systemd watchdogs, monitoring), so it
// holds nothing an attacker could use: no IDs, addresses, names or counts.
// With the admin token it also names the coordinator's peer ID and libp2p
// addresses.
type Health struct {
	OK      bool   `json:"ok"`
	Version string `json:"version"`
	// UptimeSeconds is how long the coordinator has been serving.
	UptimeSeconds int64 `json:"uptime_seconds"`

	Peer string   `json:"peer,omitempty"` // with the admin token only
	P2P  []string `json:"p2p,omitempty"`  // with the admin token only
}

// withPublic serves, ahead of everything else on the admin listener
// (the API behind the token, the console), the paths that need no token.
func (c *Coordinator) withPublic(rest http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", c.serveHealth)
	mux.Handle("GET /metrics", c.metricsHandler())
	mux.Handle("/", rest)
	return mux
}

func (c *Coordinator) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := Health{OK: true, Version: version.String(), UptimeSeconds: int64(c.now().Sub(c.started) / time.Second)}
	if c.hasAdminToken(r) {
		h.Peer, h.P2P = c.host.ID().String(), c.P2PAddrs()
	}
	writeJSON(w, http.StatusOK, h)
}

// hasAdminToken reports whether r carries the admin bearer token.
func (c *Coordinator) hasAdminToken(r *http.Request) bool {
	got := []byte(r.Header.Get("Authorization"))
	return subtle.ConstantTimeCompare(got, []byte("Bearer "+c.adminToken)) == 1
}
