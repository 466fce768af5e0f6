//! End-to-end tests: real `lease-elector` processes against a real
//! kube-apiserver + etcd (tests/k8s-fixture), one test binary.
//!
//! The toolkit is [`common`]: fixture start-up and discovery, ports, waiting,
//! daemons, the two-leaders sampler, the network-cut proxy, kubectl and
//! cleanup. The behaviours, by area:
//!
//! - [`election`]: failovers, hand edits, RBAC and malformed Leases, on the
//!   fixture this binary shares;
//! - [`restart`]: an API server restart, on a fixture of its own;
//! - [`run_mode`]: `lease-elector run` never lets two children overlap;
//! - [`pod_label`]: the leader's Pod label;
//! - [`controller_example`]: two copies of `examples/controller.rs`, exactly
//!   one reconciling;
//! - [`silent`]: connections that die silently (no FIN, no RST);
//! - [`leader_stream`]: `/leader/stream` (SSE) through a SIGTERM handover.
//!
//! Without the fixture (tests/k8s-fixture/build.sh) the tests skip, unless
//! E2E_REQUIRED=1.

mod common;
mod controller_example;
mod election;
mod leader_stream;
mod pod_label;
mod restart;
mod run_mode;
mod silent;
