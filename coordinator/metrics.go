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

// grownTraffic is a node's total after report cur, whose previous report
// was prev: total plus each counter's growth. A counter below its previous
// value started again from zero (the node restarted), so all of it is
// growth. A record from before totals were kept starts from prev.
func grownTraffic(total, prev, cur *core.Traffic) *core.Traffic {
	var t, p core.Traffic
	if prev != nil {
		p = *prev
	}
	switch {
	case total != nil:
		t = *total
	case prev != nil:
		t = *prev
	}
	grow := func(old, now int64) int64 {
		if now < old {
			return now
		}
		return now - old
	}
	t.FromCoordinator += grow(p.FromCoordinator, cur.FromCoordinator)
	t.FromOtherSites += grow(p.FromOtherSites, cur.FromOtherSites)
	t.FromSite += grow(p.FromSite, cur.FromSite)
	t.ToSite += grow(p.ToSite, cur.ToSite)
	t.ToOutside += grow(p.ToOutside, cur.ToOutside)
	return &t
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
	var traffic core.Traffic
	for _, n := range c.st.nodes {
		if t := n.TrafficTotal; t != nil {
			traffic.FromCoordinator += t.FromCoordinator
			traffic.FromOtherSites += t.FromOtherSites
			traffic.FromSite += t.FromSite
			traffic.ToSite += t.ToSite
			traffic.ToOutside += t.ToOutside
		}
		if now.Sub(n.LastSeen) < c.cfg.OnlineWindow {
			alive++
		} else {
			dead++
		}
		versions = append(versions, n.Version)
	}
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

	counter(descFleetRecv, traffic.FromCoordinator, "coordinator")
	counter(descFleetRecv, traffic.FromOtherSites, "other_site")
	counter(descFleetRecv, traffic.FromSite, "site")
	counter(descFleetSent, traffic.ToSite, "site")
	counter(descFleetSent, traffic.ToOutside, "outside")
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
