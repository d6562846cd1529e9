package net

import "errors"

var (
	// ErrUnknownSite is returned when a node is added to a site that was
	// not added first.
	ErrUnknownSite = errors.New("simulations/net: unknown site")
	// ErrBadRate is returned for a rate that is not positive.
	ErrBadRate = errors.New("simulations/net: rate must be positive")
	// ErrChunkTooBig is returned for a chunk larger than the buckets' burst.
	ErrChunkTooBig = errors.New("simulations/net: chunk larger than the burst")
)
