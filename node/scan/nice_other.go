//go:build !unix

package scan

func lowerPriority(int) {}
