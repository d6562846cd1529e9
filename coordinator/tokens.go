package coordinator

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

var siteRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// TokenRequest asks for a join token.
type TokenRequest struct {
	Site    string   `json:"site"`
	Tags    []string `json:"tags,omitempty"`
	Uses    int      `json:"uses,omitempty"`    // 0 = the default, one use (DefaultTokenUses)
	Expires string   `json:"expires,omitempty"` // Go duration; default 24h (DefaultTokenTTL)
	// Unlimited makes a token any number of nodes may enroll with until it
	// expires; Uses must then be 0.
	Unlimited bool `json:"unlimited,omitempty"`
}

// Token defaults: DESIGN.md's join tokens are one-time; more uses, or
// unlimited ones, are asked for explicitly.
const (
	DefaultTokenUses = 1
	DefaultTokenTTL  = 24 * time.Hour
)

// TokenResponse is the token, shown once.
type TokenResponse struct {
	Token   string    `json:"token"`
	Site    string    `json:"site"`
	Uses    int       `json:"uses"`
	Expires time.Time `json:"expires"`
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// CreateToken makes a join token for a site.
func (c *Coordinator) CreateToken(req TokenRequest) (*TokenResponse, error) {
	if !siteRe.MatchString(req.Site) {
		return nil, fmt.Errorf("%w: site %q: use 1-64 letters, digits, '.', '_' or '-'", ErrBadRequest, req.Site)
	}
	for _, t := range req.Tags {
		if !siteRe.MatchString(t) {
			return nil, fmt.Errorf("%w: tag %q: use 1-64 letters, digits, '.', '_' or '-'", ErrBadRequest, t)
		}
	}
	uses := req.Uses
	switch {
	case req.Uses < 0:
		return nil, fmt.Errorf("%w: uses %d: must be a positive number of nodes (for no limit, ask for an unlimited token)", ErrBadRequest, req.Uses)
	case req.Unlimited && req.Uses != 0:
		return nil, fmt.Errorf("%w: uses %d and unlimited: choose one", ErrBadRequest, req.Uses)
	case req.Unlimited:
		uses = 0 // the record's "unlimited"
	case uses == 0:
		uses = DefaultTokenUses
	}
	ttl := DefaultTokenTTL
	if req.Expires != "" {
		d, err := time.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: expires %q: want a positive duration such as 24h", ErrBadRequest, req.Expires)
		}
		ttl = d
	}
	raw := make([]byte, 24)
	rand.Read(raw)
	tok := "rmj_" + hex.EncodeToString(raw)
	now := c.now().UTC()
	rec := &TokenRecord{Hash: hashToken(tok), Site: req.Site, Tags: req.Tags, Uses: uses, Expires: now.Add(ttl), Created: now}
	c.st.mu.Lock()
	defer c.st.mu.Unlock()
	if err := c.st.write(jsonPair(keyToken+rec.Hash, rec)); err != nil {
		return nil, err
	}
	c.st.tokens[rec.Hash] = rec
	return &TokenResponse{Token: tok, Site: rec.Site, Uses: rec.Uses, Expires: rec.Expires}, nil
}
