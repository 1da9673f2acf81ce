package conman

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/conman-dev/conman/channels"
)

// metrics is the daemon's Prometheus instrumentation. It backs both
// channels.Metrics and web.Metrics.
type metrics struct {
	reg *prometheus.Registry

	sessions       prometheus.Gauge
	sessionsOpened prometheus.Counter
	sessionCloses  *prometheus.CounterVec
	overflows      prometheus.Counter
	channels       *prometheus.GaugeVec
	channelsOpened *prometheus.CounterVec
	frames         *prometheus.CounterVec
	bytes          *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	authFailures   *prometheus.CounterVec
	rejections     *prometheus.CounterVec

	// byService caches the curried counters of each service, so a channel
	// looks them up once and a frame never does.
	byService sync.Map // string → *serviceMetrics
}

func newMetrics(version string) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "conman_sessions", Help: "Connected sessions.",
		}),
		sessionsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_sessions_opened_total", Help: "Sessions opened since start.",
		}),
		sessionCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_session_closes_total", Help: "Sessions closed, by reason.",
		}, []string{"reason"}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "conman_write_queue_overflows_total", Help: "Sessions cut off because their write queue overflowed.",
		}),
		channels: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "conman_channels", Help: "Open channels, by service.",
		}, []string{"service"}),
		channelsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_channels_opened_total", Help: "Channels opened since start, by service.",
		}, []string{"service"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_frames_total", Help: "Websocket frames, by direction (in, out) and service.",
		}, []string{"direction", "service"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_frame_bytes_total", Help: "Websocket frame bytes, by direction (in, out) and service.",
		}, []string{"direction", "service"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "conman_command_duration_seconds",
			Help:    "Time from a command's arrival to the end of its handling, by service.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"service"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_auth_failures_total", Help: "Connections refused for their token, by reason.",
		}, []string{"reason"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "conman_http_rejections_total", Help: "Requests refused by the origin or host check, by reason.",
		}, []string{"reason"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "conman_build_info", Help: "The daemon's version and Go version; always 1.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	m.reg.MustRegister(
		m.sessions, m.sessionsOpened, m.sessionCloses, m.overflows,
		m.channels, m.channelsOpened, m.frames, m.bytes, m.latency,
		m.authFailures, m.rejections, buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry is the daemon's metrics registry.
func (m *metrics) Registry() *prometheus.Registry { return m.reg }

func (m *metrics) SessionOpened() {
	m.sessions.Inc()
	m.sessionsOpened.Inc()
}

func (m *metrics) SessionClosed(reason channels.CloseReason) {
	m.sessions.Dec()
	m.sessionCloses.WithLabelValues(reason.Label).Inc()
}

func (m *metrics) QueueOverflow() { m.overflows.Inc() }
func (m *metrics) ChannelOpened(service string) {
	m.channelsOpened.WithLabelValues(service).Inc()
	m.channels.WithLabelValues(service).Inc()
}
func (m *metrics) ChannelClosed(service string) { m.channels.WithLabelValues(service).Dec() }
func (m *metrics) AuthFailed(reason string)     { m.authFailures.WithLabelValues(reason).Inc() }
func (m *metrics) Rejected(reason string)       { m.rejections.WithLabelValues(reason).Inc() }
func (m *metrics) Service(name string) channels.ServiceMetrics {
	if sm, ok := m.byService.Load(name); ok {
		return sm.(*serviceMetrics)
	}
	sm := &serviceMetrics{
		framesIn:  m.frames.WithLabelValues("in", name),
		framesOut: m.frames.WithLabelValues("out", name),
		bytesIn:   m.bytes.WithLabelValues("in", name),
		bytesOut:  m.bytes.WithLabelValues("out", name),
		latency:   m.latency.WithLabelValues(name),
	}
	actual, _ := m.byService.LoadOrStore(name, sm)
	return actual.(*serviceMetrics)
}

type serviceMetrics struct {
	framesIn, framesOut, bytesIn, bytesOut prometheus.Counter
	latency                                prometheus.Observer
}

func (s *serviceMetrics) FramesIn(n, bytes int) {
	s.framesIn.Add(float64(n))
	s.bytesIn.Add(float64(bytes))
}

func (s *serviceMetrics) FramesOut(n, bytes int) {
	s.framesOut.Add(float64(n))
	s.bytesOut.Add(float64(bytes))
}

func (s *serviceMetrics) Handled(d time.Duration) { s.latency.Observe(d.Seconds()) }
