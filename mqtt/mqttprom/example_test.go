package mqttprom_test

import (
	"context"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heraldiot/herald/mqtt"
	"github.com/heraldiot/herald/mqtt/mqttprom"
)

// Export a client's packet, reconnect, in-flight and queue metrics.
func ExampleNewCollector() {
	c, err := mqtt.Dial(context.Background(), mqtt.Options{Servers: []string{"tcp://localhost:1883"}})
	if err != nil {
		log.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(mqttprom.NewCollector(c, prometheus.Labels{"broker": "local"}))
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	log.Fatal(http.ListenAndServe(":9090", nil))
}
