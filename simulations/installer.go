package simulations

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/relaymesh/relaymesh/cache"
	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/node/runner"
)

// checkInstaller stands in for node/runner: it runs no command, but reads
// the whole archive back from the node's store and checks it against the
// manifest's digest, so a corrupt byte that reached an install is caught;
// and it records when the node had the whole package.
type checkInstaller struct {
	store cache.Store

	mu      sync.Mutex
	at      time.Time // first install call: every fragment present
	corrupt bool
}

func (c *checkInstaller) Install(_ context.Context, req runner.Request, onStart func(string), onResult func(runner.Result)) ([]runner.Result, bool) {
	c.mu.Lock()
	if c.at.IsZero() {
		c.at = time.Now()
	}
	c.mu.Unlock()
	var out []runner.Result
	for _, p := range req.Packages {
		onStart(p.ID)
		r := runner.Result{Package: p.ID, State: core.StateSuccess}
		if !c.intact(p.Manifest) {
			c.mu.Lock()
			c.corrupt = true
			c.mu.Unlock()
			r = runner.Result{Package: p.ID, State: core.ErrBadDigestSt, ExitCode: -1, Detail: "simulations: archive digest mismatch"}
		}
		onResult(r)
		out = append(out, r)
	}
	return out, false
}

func (c *checkInstaller) intact(m *core.Manifest) bool {
	if m == nil || m.Size == 0 {
		return true
	}
	h := sha256.New()
	for _, f := range m.FragmentCIDs() {
		b, err := c.store.Get(f)
		if err != nil {
			return false
		}
		h.Write(b)
	}
	return m.Digest == "sha256:"+hex.EncodeToString(h.Sum(nil))
}

func (c *checkInstaller) result() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.at, c.corrupt
}
