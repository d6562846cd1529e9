package coordinator

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/relaymesh/relaymesh/core"
)

// Admin API limits.
const (
	maxJSONBody = 1 << 20
	maxFragBody = core.MaxFragmentSize
)

// apiError is the body of every error response.
type apiError struct {
	Error string `json:"error"`
}

func (c *Coordinator) apiHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tokens", func(w http.ResponseWriter, r *http.Request) {
		var req TokenRequest
		if !readJSON(w, r, &req) {
			return
		}
		responder{w, http.StatusCreated}.send(c.CreateToken(req))
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Nodes())
	})
	mux.HandleFunc("GET /v1/nodes/{id}", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusOK}.send(c.Node(r.PathValue("id")))
	})
	mux.HandleFunc("GET /v1/sites", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Sites())
	})
	mux.HandleFunc("POST /v1/sites/{site}/rotate-key", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusAccepted}.send(c.RotateSiteKey(r.PathValue("site")))
	})
	mux.HandleFunc("GET /v1/packages", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Packages())
	})
	mux.HandleFunc("GET /v1/packages/{id}", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusOK}.send(c.Package(r.PathValue("id")))
	})
	mux.HandleFunc("DELETE /v1/packages/{id}", func(w http.ResponseWriter, r *http.Request) {
		force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
		if err := c.DeletePackage(r.PathValue("id"), force); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/packages", func(w http.ResponseWriter, r *http.Request) {
		// The body is a canonical manifest whose fragments were uploaded.
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, core.MaxManifestBytes))
		if err != nil {
			writeErr(w, fmt.Errorf("%w: manifest body: %w", ErrBadRequest, err))
			return
		}
		responder{w, http.StatusCreated}.send(c.PublishPackage(b))
	})
	mux.HandleFunc("POST /v1/fragments/missing", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			CIDs []string `json:"cids"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		missing, err := c.MissingFragments(req.CIDs)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string][]string{"missing": nilToEmpty(missing)})
	})
	mux.HandleFunc("PUT /v1/fragments/{cid}", func(w http.ResponseWriter, r *http.Request) {
		id, err := core.ParseCID(r.PathValue("cid"))
		if err != nil {
			writeErr(w, fmt.Errorf("%w: %w", ErrBadRequest, err))
			return
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFragBody))
		if err != nil {
			writeErr(w, fmt.Errorf("%w: fragment body: %w", ErrBadRequest, err))
			return
		}
		if err := c.PutFragment(id, b); err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		var req DeployRequest
		if !readJSON(w, r, &req) {
			return
		}
		responder{w, http.StatusCreated}.send(c.CreateDeployment(req))
	})
	mux.HandleFunc("GET /v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Deployments())
	})
	mux.HandleFunc("GET /v1/deployments/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("archived") == "true" {
			responder{w, http.StatusOK}.send(c.DeploymentArchive(r.PathValue("id")))
			return
		}
		responder{w, http.StatusOK}.send(c.Deployment(r.PathValue("id")))
	})
	mux.HandleFunc("POST /v1/deployments/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusOK}.send(c.CancelDeployment(r.PathValue("id"), false))
	})
	mux.HandleFunc("POST /v1/deployments/{id}/validate", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			All bool `json:"all"`
		}
		if !readJSON(w, r, &req) {
			return
		}
		n, err := c.ValidateDeployment(r.PathValue("id"), req.All)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"cleared": n})
	})
	mux.HandleFunc("POST /v1/scans", func(w http.ResponseWriter, r *http.Request) {
		var req ScanRequest
		if !readJSON(w, r, &req) {
			return
		}
		responder{w, http.StatusCreated}.send(c.CreateScan(req))
	})
	mux.HandleFunc("GET /v1/updates", func(w http.ResponseWriter, r *http.Request) {
		f, ok := updatesFilter(w, r)
		if !ok {
			return
		}
		if r.URL.Query().Get("format") == "csv" {
			b, err := c.UpdatesCSV(f)
			if err != nil {
				writeErr(w, err)
				return
			}
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write(b)
			return
		}
		writeJSON(w, http.StatusOK, c.Updates(f))
	})
	mux.HandleFunc("GET /v1/nodes/{id}/updates", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusOK}.send(c.NodeUpdates(r.PathValue("id")))
	})
	mux.HandleFunc("GET /v1/nodes/{id}/inventory", func(w http.ResponseWriter, r *http.Request) {
		responder{w, http.StatusOK}.send(c.Inventory(r.PathValue("id")))
	})
	mux.HandleFunc("GET /v1/snapshot", c.serveSnapshot)
	c.lifecycleRoutes(mux)
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Stats())
	})
	return c.withPublic(c.mountConsole(c.authenticate(mux)))
}

// mountConsole serves the web console (Config.Console) beside the JSON
// API: /v1/ stays behind the bearer token, every other path is the
// console's, which has its own session login.
func (c *Coordinator) mountConsole(api http.Handler) http.Handler {
	if c.cfg.Console == nil {
		return api
	}
	root := http.NewServeMux()
	root.Handle("/v1/", api)
	root.Handle("/", c.cfg.Console(c))
	return root
}

// updatesFilter reads ?site=S&security=true; on a bad value it has
// answered 400.
func updatesFilter(w http.ResponseWriter, r *http.Request) (UpdatesFilter, bool) {
	q := r.URL.Query()
	f := UpdatesFilter{Site: q.Get("site")}
	if s := q.Get("security"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			writeErr(w, fmt.Errorf("%w: security=%q: want true or false", ErrBadRequest, s))
			return f, false
		}
		f.Security = b
	}
	switch q.Get("format") {
	case "", "json", "csv":
	default:
		writeErr(w, fmt.Errorf("%w: format=%q: want json or csv", ErrBadRequest, q.Get("format")))
		return f, false
	}
	return f, true
}

func nilToEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *Coordinator) authenticate(next http.Handler) http.Handler {
	want := []byte("Bearer " + c.adminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="relaymesh"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"missing or wrong admin token: pass the token in coordinator-dir/admin.token as 'Authorization: Bearer <token>'"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// readJSON decodes a strict JSON body; on failure it has answered 400
// naming the field.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		msg := err.Error()
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			msg = fmt.Sprintf("field %q: got %s, want %s", te.Field, te.Value, te.Type)
		} else if strings.HasPrefix(msg, "json: unknown field ") {
			msg = "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
		} else if errors.Is(err, io.EOF) {
			msg = "empty body: want a JSON object"
		}
		writeJSON(w, http.StatusBadRequest, apiError{"bad request: " + msg})
		return false
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, apiError{"bad request: trailing data after the JSON object"})
		return false
	}
	return true
}

type responder struct {
	w    http.ResponseWriter
	code int
}

func (r responder) send(v any, err error) {
	if err != nil {
		writeErr(r.w, err)
		return
	}
	writeJSON(r.w, r.code, v)
}

func writeErr(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrNoTargets):
		code = http.StatusBadRequest
	case errors.Is(err, ErrConflict):
		code = http.StatusConflict
	case errors.Is(err, ErrUpstream):
		code = http.StatusBadGateway
	}
	writeJSON(w, code, apiError{err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Stats are the coordinator's counters.
type Stats struct {
	Nodes            int   `json:"nodes"`
	Packages         int   `json:"packages"`
	Deployments      int   `json:"deployments"`
	ReportsApplied   int64 `json:"reports_applied"`
	ReportsDuplicate int64 `json:"reports_duplicate"`
	DroppedBadSig    int64 `json:"dropped_bad_signature"`
	DroppedUnknown   int64 `json:"dropped_unknown_order"`
	DroppedNotEnroll int64 `json:"dropped_not_enrolled"`
	DroppedMalformed int64 `json:"dropped_malformed"`
	BytesSent        int64 `json:"bytes_sent"`
}

// Stats returns the counters.
func (c *Coordinator) Stats() Stats {
	c.st.mu.RLock()
	s := Stats{Nodes: len(c.st.nodes), Packages: len(c.st.packages), Deployments: len(c.st.deps)}
	c.st.mu.RUnlock()
	s.ReportsApplied = c.counters.Applied.Load()
	s.ReportsDuplicate = c.counters.Duplicate.Load()
	s.DroppedBadSig = c.counters.BadSignature.Load()
	s.DroppedUnknown = c.counters.UnknownOrder.Load()
	s.DroppedNotEnroll = c.counters.NotEnrolled.Load()
	s.DroppedMalformed = c.counters.Malformed.Load()
	if c.meter != nil {
		for _, cnt := range c.meter.Snapshot() {
			s.BytesSent += cnt.Sent
		}
	}
	return s
}
