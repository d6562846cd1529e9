package cache

import "errors"

var (
	ErrNotFound      = errors.New("cache: not found")
	ErrQuotaExceeded = errors.New("cache: quota exceeded")
	ErrClosed        = errors.New("cache: closed")
	ErrBadConfig     = errors.New("cache: invalid config")
	ErrBadOwner      = errors.New("cache: pin owner must not be empty")
	ErrBadKey        = errors.New("cache: key must not be empty")
	ErrCorruptDB     = errors.New("cache: corrupt database entry")
)
