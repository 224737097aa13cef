package metrics

import (
	"cmp"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry holds every lifeboat metric.
var Registry = prometheus.NewRegistry()

var (
	// DHCPPackets counts DHCP requests by message type and what became of
	// them: answered, unknown (MAC not in the inventory), unanswered (known
	// host, nothing to say: wrong architecture, not PXE...), failed (event
	// log or send failed).
	DHCPPackets = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_dhcp_packets_total", Help: "DHCP requests received, by type and outcome.",
	}, []string{"type", "outcome"})
	// TFTPTransfers counts first-stage transfers by outcome (sent, failed).
	TFTPTransfers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_tftp_transfers_total", Help: "TFTP transfers, by outcome.",
	}, []string{"outcome"})
	// TFTPBytes counts bytes sent over TFTP.
	TFTPBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lifeboat_tftp_bytes_total", Help: "Bytes sent over TFTP.",
	})
	// HTTPRequests counts boot-listener requests by route and status code.
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_http_requests_total", Help: "Boot listener HTTP requests, by route and status code.",
	}, []string{"route", "code"})
	// HTTPBytes counts bytes sent by the boot listener, by route.
	HTTPBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_http_bytes_total", Help: "Bytes sent by the boot listener, by route.",
	}, []string{"route"})
	// BootsStarted counts netboots begun, by firmware.
	BootsStarted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_boots_started_total", Help: "Netboots begun, by firmware.",
	}, []string{"firmware"})
	// BootStages counts boots reaching each stage of the state machine.
	BootStages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_boot_stage_reached_total", Help: "Boots that reached a stage of the boot state machine.",
	}, []string{"stage"})
	// Checkins counts agent check-ins by outcome (ok, unknown, expired,
	// replay, binding).
	Checkins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_agent_checkins_total", Help: "Agent check-ins, by outcome.",
	}, []string{"outcome"})
	// Unlocks counts unlock outcomes reported by agents (success, failure,
	// lockout, handoff, handoff_failed).
	Unlocks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_unlock_outcomes_total", Help: "Unlock outcomes reported by agents.",
	}, []string{"outcome"})
	// EventCommit measures one group commit of the event log.
	EventCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "lifeboat_event_commit_seconds", Help: "Time to commit one batch of events.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	// EventsWritten counts events committed to the log.
	EventsWritten = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "lifeboat_events_written_total", Help: "Events committed to the event log.",
	})
	// Notices counts delivery attempts of notices by channel (webhook,
	// email) and result (delivered, retry, failed).
	Notices = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lifeboat_notices_total", Help: "Notice delivery attempts by channel and result.",
	}, []string{"channel", "result"})
	// NoticeLatency measures the time from an audit record to the
	// delivery of its notice.
	NoticeLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "lifeboat_notice_latency_seconds", Help: "Time from the audit record to the delivery of its notice.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 20),
	}, []string{"channel"})
)

func init() {
	Registry.MustRegister(DHCPPackets, TFTPTransfers, TFTPBytes, HTTPRequests, HTTPBytes, BootsStarted, BootStages,
		Checkins, Unlocks, EventCommit, EventsWritten, Notices, NoticeLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

// BootsByStage reports, at each scrape, the boots of the last hour by the
// stage they have reached; count is the store's tracker (Boots.InFlight).
func BootsByStage(stages []string, count func() map[string]int) prometheus.Collector {
	desc := prometheus.NewDesc("lifeboat_boots_by_stage", "Boots begun in the last hour, by the stage they have reached.", []string{"stage"}, nil)
	return collectorFunc{desc: desc, collect: func(ch chan<- prometheus.Metric) {
		n := count()
		for _, s := range stages {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n[s]), s)
		}
	}}
}

type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }

// Handler serves the registry in the Prometheus exposition format.
func Handler() http.Handler {
	return promhttp.HandlerFor(Registry, promhttp.HandlerOpts{})
}

// CountWriter wraps a ResponseWriter to learn the status and size of a
// response, for HTTPRequests and HTTPBytes.
type CountWriter struct {
	http.ResponseWriter
	Code  int
	Bytes int64
}

// WriteHeader implements http.ResponseWriter.
func (c *CountWriter) WriteHeader(code int) {
	if c.Code == 0 {
		c.Code = code
	}
	c.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (c *CountWriter) Write(b []byte) (int, error) {
	if c.Code == 0 {
		c.Code = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(b)
	c.Bytes += int64(n)
	return n, err
}

// ReadFrom lets io.Copy (http.ServeContent) reach the connection's own
// ReadFrom, so that image files go out with sendfile rather than through a
// 32 KiB buffer and two system calls per piece.
func (c *CountWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.Code == 0 {
		c.Code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{c.ResponseWriter}, r)
	}
	c.Bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection.
func (c *CountWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// AccessLog counts and logs each request of the boot listener (boot files
// and the agent API) by its route pattern, never its raw path: the agent
// archive's path holds a boot token.
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &CountWriter{ResponseWriter: w}
		start := time.Now()
		next.ServeHTTP(cw, r)
		route := r.Pattern // set by the mux: one of the fixed routes
		if route == "" {
			route = "none"
		}
		code := cmp.Or(cw.Code, http.StatusOK)
		HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		HTTPBytes.WithLabelValues(route).Add(float64(cw.Bytes))
		log.Debug("http", "method", r.Method, "route", route, "status", code,
			"bytes", cw.Bytes, "peer", r.RemoteAddr, "took", time.Since(start).String())
	})
}
