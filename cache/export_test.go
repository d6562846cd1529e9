package cache

// Test helpers for the external test package (conformance_test.go).
var OpenTestBadger = openTestBadger
