package core

import "time"

// ProtoLogs: the coordinator asks a node for its recent log records
// (relaymesh nodes logs). Nodes answer only their pinned coordinator.
const ProtoLogs = "/relaymesh/logs/1.0.0"

// Log limits: a node keeps MaxLogRecords records in memory; one record's
// message and each attribute value are cut at MaxLogText bytes.
const (
	MaxLogRecords  = 4096
	MaxLogText     = 1024
	MaxLogRequest  = 4 << 10
	MaxLogResponse = 16 << 20
)

// LogsRequest asks for the records newer than Since at Level or above
// ("debug", "info", "warn", "error"; empty is info), at most Max (0 or
// more than MaxLogRecords is MaxLogRecords), the newest kept.
type LogsRequest struct {
	Since time.Time `json:"since,omitempty"`
	Level string    `json:"level,omitempty"`
	Max   int       `json:"max,omitempty"`
}

// LogRecord is one log line of a node.
type LogRecord struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
	Attrs []LogAttr `json:"attrs,omitempty"`
}

// LogAttr is one key=value of a record, in the order logged.
type LogAttr struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

// LogsResponse holds the records asked for, oldest first. Oldest is the
// time of the oldest record the node still keeps, Dropped how many older
// ones fell out of its buffer since it started.
type LogsResponse struct {
	Records []LogRecord `json:"records"`
	Oldest  time.Time   `json:"oldest,omitempty"`
	Dropped int64       `json:"dropped,omitempty"`
}
