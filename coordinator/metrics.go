package coordinator

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relaymesh/relaymesh/core"
	"github.com/relaymesh/relaymesh/p2p"
)

// Prometheus metrics, served at GET /metrics on the admin listener.
// Labels hold states, reasons, peer classes and versions, never node IDs,
// names or sites: the page needs no token (see SECURITY.md).
var (
	descDeployments = prometheus.NewDesc("relaymesh_deployments",
		"Deployments by state (SCHEDULED, RUNNING, INCOMPLETE, COMPLETED, CANCELLED).", []string{"state"}, nil)
	descRows = prometheus.NewDesc("relaymesh_deployment_rows",
		"Per-node rows of all deployments by status (validated rows excluded).", []string{"state"}, nil)
	descNodes = prometheus.NewDesc("relaymesh_nodes",
		"Enrolled nodes, by whether they synced within the online window.", []string{"alive"}, nil)
	descVersions = prometheus.NewDesc("relaymesh_node_versions",
		"Enrolled nodes by the relaymesh version they last reported; more than one series means a mixed fleet.", []string{"version"}, nil)
	descReports = prometheus.NewDesc("relaymesh_status_reports_total",
		"Signed status reports taken in: applied, or duplicates of one applied before.", []string{"result"}, nil)
	descDropped = prometheus.NewDesc("relaymesh_status_reports_dropped_total",
		"Status reports and streams dropped, by reason.", []string{"reason"}, nil)
	descCoordBytes = prometheus.NewDesc("relaymesh_coordinator_bytes_total",
		"Bytes the coordinator's libp2p host exchanged, by direction and peer (an enrolled node, or a peer not enrolled).", []string{"direction", "peer"}, nil)
	descFleetRecv = prometheus.NewDesc("relaymesh_fleet_received_bytes_total",
		"Bytes the nodes received, by where from (coordinator, other_site, site), summed from their reports; a node's restart does not make it go down.", []string{"from"}, nil)
	descFleetSent = prometheus.NewDesc("relaymesh_fleet_sent_bytes_total",
		"Bytes the nodes sent, by where to (site, outside), summed from their reports.", []string{"to"}, nil)
)

// fleetTraffic sums the byte counters nodes report. A node's counters
// start again at zero when it restarts; the sum takes each report's
// growth over the node's previous one, so it only ever grows.
type fleetTraffic struct {
	fromCoordinator, fromOtherSites, fromSite, toSite, toOutside int64
}

// add takes in a node's report cur after prev (nil when none).
func (f *fleetTraffic) add(prev, cur *core.Traffic) {
	if cur == nil {
		return
	}
	var p core.Traffic
	if prev != nil {
		p = *prev
	}
	grow := func(old, now int64) int64 {
		if now < old { // restarted: counting from zero again
			return now
		}
		return now - old
	}
	f.fromCoordinator += grow(p.FromCoordinator, cur.FromCoordinator)
	f.fromOtherSites += grow(p.FromOtherSites, cur.FromOtherSites)
	f.fromSite += grow(p.FromSite, cur.FromSite)
	f.toSite += grow(p.ToSite, cur.ToSite)
	f.toOutside += grow(p.ToOutside, cur.ToOutside)
}

// metricsCollector reads the coordinator's state at each scrape.
type metricsCollector struct{ c *Coordinator }

func (m metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDeployments, descRows, descNodes, descVersions, descReports, descDropped,
		descCoordBytes, descFleetRecv, descFleetSent} {
		ch <- d
	}
}

func (m metricsCollector) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	gauge := func(d *prometheus.Desc, v int, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), label)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}

	c.st.mu.RLock()
	deps := map[string]int{DeployScheduled: 0, DeployRunning: 0, DeployIncomplete: 0, DeployCompleted: 0, DeployCancelled: 0}
	rows := map[core.State]int{}
	for id, d := range c.st.deps {
		deps[c.deployStateLocked(d)]++
		for _, r := range c.st.rows[id] {
			if !r.Validated {
				rows[r.State]++
			}
		}
	}
	now := c.now()
	alive, dead := 0, 0
	var versions []string
	for _, n := range c.st.nodes {
		if now.Sub(n.LastSeen) < c.cfg.OnlineWindow {
			alive++
		} else {
			dead++
		}
		versions = append(versions, n.Version)
	}
	traffic := c.traffic
	c.st.mu.RUnlock()

	for st, n := range deps {
		gauge(descDeployments, n, st)
	}
	for st, n := range rows {
		gauge(descRows, n, string(st))
	}
	gauge(descNodes, alive, "true")
	gauge(descNodes, dead, "false")
	for _, v := range CountVersions(versions) {
		gauge(descVersions, v.Nodes, v.Version)
	}

	counter(descReports, c.counters.Applied.Load(), "applied")
	counter(descReports, c.counters.Duplicate.Load(), "duplicate")
	counter(descDropped, c.counters.BadSignature.Load(), "bad_signature")
	counter(descDropped, c.counters.UnknownOrder.Load(), "unknown_order")
	counter(descDropped, c.counters.NotEnrolled.Load(), "not_enrolled")
	counter(descDropped, c.counters.Malformed.Load(), "malformed")

	snap := c.meter.Snapshot()
	node, stranger := snap[p2p.ClassOtherSite], snap[p2p.ClassUnknown]
	counter(descCoordBytes, node.Sent, "sent", "node")
	counter(descCoordBytes, node.Recv, "received", "node")
	counter(descCoordBytes, stranger.Sent, "sent", "unenrolled")
	counter(descCoordBytes, stranger.Recv, "received", "unenrolled")

	counter(descFleetRecv, traffic.fromCoordinator, "coordinator")
	counter(descFleetRecv, traffic.fromOtherSites, "other_site")
	counter(descFleetRecv, traffic.fromSite, "site")
	counter(descFleetSent, traffic.toSite, "site")
	counter(descFleetSent, traffic.toOutside, "outside")
}

// metricsHandler serves the coordinator's metrics, the Go runtime's and
// the process's, in the Prometheus text format.
func (c *Coordinator) metricsHandler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metricsCollector{c}, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(c.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
}
