//go:build tools

// The node components built by tests/node/build.sh (a real single-node
// cluster for the end-to-end tests that run lease-elector as Pods).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
