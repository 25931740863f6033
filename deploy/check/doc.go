// Package check holds the tests of the files under deploy/ that a platform
// team applies: the Dockerfile, the compose file, the Helm chart, the
// Prometheus alert rules and the Grafana dashboard. Each is read by the
// real parser of its tool (BuildKit's Dockerfile parser, compose-go's
// loader, Helm's chart loader, engine and linter with the rendered objects
// decoded strictly into k8s.io/api types, Prometheus' rule and PromQL
// parsers), and what they configure is loaded by outlookd's own config and
// temporalconn packages.
//
// It is a module of its own so that these heavy modules stay out of
// outlookd's build; run it with `make deploy-check`.
package check
