// OutpostOperations: what every role needs to be operated — a Prometheus registry behind swift-metrics,
// exported on `/metrics` with `/healthz` beside it, and orderly shutdown on SIGTERM/SIGINT (and SIGHUP for
// reloads). Roles emit metrics through the swift-metrics API only; this module is the one backend.
